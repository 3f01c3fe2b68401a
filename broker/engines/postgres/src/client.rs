//! The server side toward the client: the broker plays PostgreSQL until the client has proven
//! it holds the tunnel secret.
//!
//! ```text
//! client                              broker
//!   SSLRequest / GSSENCRequest  ──▶
//!                               ◀──   'N' (the tunnel is already TLS up to the broker)
//!   StartupMessage              ──▶   accept_startup → ClientHello::Startup
//!                               ◀──   AuthenticationCleartextPassword
//!   PasswordMessage(secret)     ──▶   authenticate: constant-time compare
//!                               ◀──   (wrong: FATAL 28P01, close)
//! ```
//!
//! Cleartext is the right method here: the password is the one-time tunnel secret, it travels
//! inside the CLI's TLS tunnel, and the broker must see it to compare it. Every read waits at
//! most [`STARTUP_TIMEOUT`], so an idle client cannot hold a login slot.
//!
//! These functions report their own failures to the client (an ErrorResponse, then close);
//! the caller only logs the returned error.

use crate::codec::{
    Authentication, CodecError, ErrorFields, MAX_LOGIN_MESSAGE, PasswordMessage, Severity,
    StartupPacket, Terminate, tag,
};
use crate::wire::{self, ReadError};
use bytes::BytesMut;
use sluice_shared::Secret;
use std::future::Future;
use std::io;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// How long the broker waits for each client message before authentication completes.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many SSLRequest/GSSENCRequest probes a client may send before its startup packet.
/// libpq sends at most one of each; more is a client looping.
const MAX_ENCRYPTION_PROBES: usize = 2;

/// The message shown when the tunnel secret is wrong. It says where the right one comes from.
pub const WRONG_SECRET_MESSAGE: &str = "password authentication failed: the tunnel secret is wrong \
     (use the command or PGPASSWORD printed by `sluice connect`)";

/// What the client wants, from its first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    /// A session: the startup parameters in the order sent.
    Startup {
        /// `user`, `database`, `application_name`, ... as the client sent them.
        params: Vec<(String, String)>,
    },
    /// Cancel the query of the session that was given this (broker-issued) key.
    Cancel {
        /// Process id from the broker's BackendKeyData.
        pid: i32,
        /// Secret key from the broker's BackendKeyData.
        key: i32,
    },
}

/// Why the client side of a login failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client closed the connection before the login finished (psql does this when it
    /// has no password yet, then prompts and reconnects).
    #[error("the client closed the connection during login")]
    Closed,
    /// The client sent nothing for [`STARTUP_TIMEOUT`].
    #[error("the client sent nothing for {}s during login", STARTUP_TIMEOUT.as_secs())]
    Timeout,
    /// The client's bytes are not valid protocol. Reported to the client as FATAL 08P01 (or
    /// 0A000 for an unsupported protocol version).
    #[error("client protocol violation: {0}")]
    Protocol(#[from] CodecError),
    /// A valid message of the wrong type for this point of the login.
    #[error("the client sent message type {:?} where {expected} was expected", char::from(*tag))]
    Unexpected {
        /// The tag received.
        tag: u8,
        /// What should have come.
        expected: &'static str,
    },
    /// The password was not the tunnel secret. Reported to the client as FATAL 28P01.
    #[error("the client presented a wrong tunnel secret")]
    WrongSecret,
    /// Reading from or writing to the client failed.
    #[error("I/O error with the client: {0}")]
    Io(#[source] io::Error),
}

impl From<ReadError> for ClientError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => Self::Closed,
            ReadError::Codec(e) => Self::Protocol(e),
            ReadError::Io(e) => Self::Io(e),
        }
    }
}

/// A startup parameter the broker will not serve, with the SQLSTATE to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLSTATE {code})")]
pub struct Refusal {
    /// SQLSTATE for the client.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
}

impl Refusal {
    /// The FATAL ErrorResponse to send.
    pub fn to_fields(&self) -> ErrorFields {
        ErrorFields::new(Severity::Fatal, self.code, self.message.clone())
    }
}

/// Reads the client's first packet, answering encryption probes with 'N' on the way.
///
/// An invalid packet is answered with a FATAL ErrorResponse and the stream is shut down.
pub async fn accept_startup<S>(stream: &mut S) -> Result<ClientHello, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut probes = 0;
    loop {
        let packet = match timed(wire::read_startup(stream)).await {
            Ok(p) => p,
            Err(e) => return Err(fail(stream, e).await),
        };
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                probes += 1;
                if probes > MAX_ENCRYPTION_PROBES {
                    let e = ClientError::Protocol(CodecError::Invalid {
                        what: "startup",
                        reason: "too many encryption requests",
                    });
                    return Err(fail(stream, e).await);
                }
                // Plaintext from here is fine: the bytes are inside the CLI's TLS tunnel.
                stream.write_all(b"N").await.map_err(ClientError::Io)?;
                stream.flush().await.map_err(ClientError::Io)?;
            }
            StartupPacket::CancelRequest { pid, key } => {
                return Ok(ClientHello::Cancel { pid, key });
            }
            StartupPacket::StartupMessage { params } => return Ok(ClientHello::Startup { params }),
        }
    }
}

/// Asks for a cleartext password and checks it against the tunnel secret in constant time.
///
/// A wrong secret is answered with FATAL 28P01 ([`WRONG_SECRET_MESSAGE`]) and the stream is
/// shut down.
pub async fn authenticate<S>(stream: &mut S, expected: &Secret<String>) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut buf = BytesMut::new();
    Authentication::CleartextPassword
        .encode(&mut buf)
        .map_err(ClientError::Protocol)?;
    wire::send(stream, &buf).await.map_err(ClientError::Io)?;

    let (tag, body) = match timed(wire::read_message(stream, MAX_LOGIN_MESSAGE)).await {
        Ok(m) => m,
        Err(e) => return Err(fail(stream, e).await),
    };
    if tag == tag::TERMINATE && Terminate::decode(&body).is_ok() {
        return Err(ClientError::Closed);
    }
    if tag != tag::PASSWORD {
        let e = ClientError::Unexpected {
            tag,
            expected: "a password message",
        };
        return Err(fail(stream, e).await);
    }
    let password = match PasswordMessage::decode(&body) {
        Ok(p) => p.password,
        Err(e) => return Err(fail(stream, ClientError::Protocol(e)).await),
    };
    let matches: bool = expected
        .expose()
        .as_bytes()
        .ct_eq(password.expose().as_slice())
        .into();
    if matches {
        Ok(())
    } else {
        Err(fail(stream, ClientError::WrongSecret).await)
    }
}

/// Checks the client's startup parameters against what the resource offers.
///
/// - `replication` (other than a false value) is refused: a replication connection is a
///   different protocol that the broker does not mediate.
/// - `database`, if sent, must be the target's database, or equal `user`: libpq fills an
///   unset database with the user name, so that value means "the default" and is served.
pub fn check_params(params: &[(String, String)], target_database: &str) -> Result<(), Refusal> {
    let get = |name: &str| crate::codec::startup::param(params, name);
    if let Some(value) = get("replication")
        && !matches!(
            value.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        )
    {
        return Err(Refusal {
            code: "0A000",
            message: "sluice: replication is not available through Sluice".into(),
        });
    }
    if let Some(database) = get("database")
        && !database.is_empty()
        && database != target_database
        && Some(database) != get("user")
    {
        return Err(Refusal {
            code: "3D000",
            message: format!(
                "sluice: database \"{database}\" is not available through this resource; \
                 it gives access to database \"{target_database}\" only"
            ),
        });
    }
    Ok(())
}

/// Sends `fields` as a FATAL ErrorResponse and shuts the stream down. Errors are ignored: the
/// session is over either way and the caller reports the original cause.
pub(crate) async fn send_fatal<S>(stream: &mut S, fields: &ErrorFields)
where
    S: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = BytesMut::new();
    if fields.encode_error(&mut buf).is_ok() {
        let _ = wire::send(stream, &buf).await;
    }
    let _ = stream.shutdown().await;
}

/// Runs one client read under [`STARTUP_TIMEOUT`].
async fn timed<T>(read: impl Future<Output = Result<T, ReadError>>) -> Result<T, ClientError> {
    match tokio::time::timeout(STARTUP_TIMEOUT, read).await {
        Ok(r) => r.map_err(ClientError::from),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// Tells the client why its login ends, where the protocol has words for it, and closes.
async fn fail<S>(stream: &mut S, error: ClientError) -> ClientError
where
    S: AsyncWrite + Unpin + ?Sized,
{
    let fields =
        match &error {
            ClientError::WrongSecret => Some(ErrorFields::new(
                Severity::Fatal,
                "28P01",
                WRONG_SECRET_MESSAGE,
            )),
            ClientError::Protocol(CodecError::UnsupportedProtocol { .. }) => Some(
                ErrorFields::new(Severity::Fatal, "0A000", error_text(&error)),
            ),
            ClientError::Protocol(_) | ClientError::Unexpected { .. } => Some(ErrorFields::new(
                Severity::Fatal,
                "08P01",
                error_text(&error),
            )),
            // Nobody is listening, or the stream is broken: just close.
            ClientError::Closed | ClientError::Timeout | ClientError::Io(_) => None,
        };
    match fields {
        Some(f) => send_fatal(stream, &f).await,
        None => {
            let _ = stream.shutdown().await;
        }
    }
    error
}

/// The client-facing text of a protocol error (the codec's messages describe structure only).
fn error_text(error: &ClientError) -> String {
    match error {
        ClientError::Protocol(e @ CodecError::UnsupportedProtocol { .. }) => e.to_string(),
        ClientError::Protocol(e) => format!("sluice: invalid message from the client: {e}"),
        other => format!("sluice: {other}"),
    }
}

#[cfg(test)]
mod tests;
