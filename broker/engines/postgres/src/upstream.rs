//! The client side toward the target: connect, optionally TLS, log in with the broker's
//! credential, and collect what the server says before it is ready for queries.
//!
//! ```text
//! broker                                  target
//!   TCP connect (sluice_engine::tcp)  ──▶
//!   [SSLRequest ──▶ ◀── 'S' ── TLS handshake]
//!   StartupMessage(user, database, allow-listed client params) ──▶
//!                                     ◀── AuthenticationOk | Cleartext | MD5 | SASL
//!   PasswordMessage / SCRAM exchange  ──▶  (server's final SCRAM message verified)
//!                                     ◀── AuthenticationOk
//!                                     ◀── ParameterStatus*, BackendKeyData, ReadyForQuery
//! ```
//!
//! The credential lives in [`Target::password`] and is used in exactly three places (the
//! cleartext answer, the MD5 hash, the SCRAM state). It never goes into an error: errors carry
//! the server's own SQLSTATE and message, which PostgreSQL never fills with a password.

mod scram;

use crate::codec::{
    Authentication, BackendMessage, CodecError, ErrorFields, MAX_LOGIN_MESSAGE, PasswordMessage,
    ReadyForQuery, SaslInitialResponse, SaslResponse, StartupPacket,
};
use crate::tls;
use crate::wire::{self, ReadError};
use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use scram::{Binding, Scram};
use sluice_shared::Secret;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long the whole login to the target may take once TCP is connected.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Client startup parameters passed on to the target (compared case-insensitively, as
/// PostgreSQL compares setting names). Everything else is dropped: `options` could set any
/// setting (`-c role=...`), `replication` changes the protocol, `user` and `database` come
/// from the resource.
pub const FORWARDED_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "search_path",
];

/// Where and as whom the broker logs in. Built by the broker from its configuration.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of the PostgreSQL server.
    pub address: String,
    /// The one database the resource gives access to.
    pub database: String,
    /// The role the broker logs in as.
    pub user: String,
    /// The role's password; only the broker knows it.
    pub password: Secret<String>,
    /// Whether and how to encrypt the connection.
    pub tls: TargetTls,
    /// Settings the broker imposes at login, over any the client asked for (a read-only role
    /// gets `default_transaction_read_only=on`; guarded roles pin `client_encoding=UTF8` so the
    /// server reads SQL exactly as the guard did).
    pub settings: Vec<(String, String)>,
}

/// TLS toward the target.
#[derive(Debug, Clone)]
pub enum TargetTls {
    /// Plain TCP (a target on the same host or a private network).
    Disable,
    /// Encrypt. Without `roots` the certificate is **not verified** (libpq's
    /// `sslmode=require`): protection against passive eavesdropping only, for operators who
    /// configure it explicitly. With `roots` the chain must lead to one of them but the host
    /// name is not checked (`verify-ca`).
    Require {
        /// Trust anchors for the chain, if any.
        roots: Option<Arc<rustls::RootCertStore>>,
    },
    /// Encrypt and verify the chain against `roots` and the certificate against `server_name`.
    VerifyFull {
        /// Trust anchors.
        roots: Arc<rustls::RootCertStore>,
        /// The name the certificate must be valid for.
        server_name: String,
    },
}

/// How the broker authenticated to the target, for the session record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The server asked for nothing (`trust`).
    Trust,
    /// Cleartext password.
    Cleartext,
    /// MD5 challenge-response.
    Md5,
    /// SCRAM-SHA-256 without channel binding.
    ScramSha256,
    /// SCRAM-SHA-256-PLUS bound to the server's TLS certificate.
    ScramSha256Plus,
}

/// A logged-in connection to the target, ready for queries.
#[derive(Debug)]
pub struct Upstream {
    /// The connection; relay it as is.
    pub stream: UpstreamStream,
    /// ParameterStatus values, in the order the server sent them.
    pub params: Vec<(String, String)>,
    /// The real `(pid, key)` from BackendKeyData; `None` if the server sent none (then
    /// queries cannot be cancelled, exactly as when connecting directly).
    pub backend_key: Option<(i32, i32)>,
    /// NoticeResponses the server sent during login, to pass on to the client.
    pub notices: Vec<ErrorFields>,
    /// The transaction status of the final ReadyForQuery.
    pub ready: ReadyForQuery,
    /// How the broker authenticated.
    pub auth: AuthMethod,
}

/// A connection to the target, plain or TLS.
#[derive(Debug)]
pub enum UpstreamStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamStream {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// The TCP connection under it (under the TLS, when there is TLS).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Why the broker could not log in to the target. No variant ever holds the credential.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect refused, failed or timed out.
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// The address dialled.
        address: String,
        /// The OS error or timeout.
        reason: String,
    },
    /// TLS is configured but the server answered the SSLRequest with 'N'.
    #[error("target does not offer TLS")]
    TlsNotOffered,
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    #[error("TLS with the target failed: {0}")]
    Tls(String),
    /// The server refused the login with an ErrorResponse.
    #[error("the target refused the login: {message} (SQLSTATE {code})")]
    Server {
        /// The server's SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server asks for an authentication method Sluice does not implement.
    #[error("the target asks for {0} authentication, which Sluice does not support")]
    UnsupportedAuth(String),
    /// The SCRAM exchange failed, including a server final message that does not verify
    /// (the server does not know the password: not the real target).
    #[error("SCRAM authentication with the target failed: {0}")]
    Scram(String),
    /// The server sent something the login does not allow.
    #[error("the target violated the protocol: {0}")]
    Protocol(String),
    /// The server closed the connection during login.
    #[error("the target closed the connection during login")]
    Closed,
    /// The login did not finish within [`LOGIN_TIMEOUT`] (or the cancel deadline).
    #[error("the target did not answer within {0}s")]
    Timeout(u64),
    /// Reading from or writing to the target failed.
    #[error("I/O error with the target: {0}")]
    Io(#[source] io::Error),
    /// The target's configuration cannot be used (a NUL in the user name, a bad server name).
    #[error("invalid target configuration: {0}")]
    Config(String),
}

impl UpstreamError {
    /// Whether this is a failure to reach the target (as opposed to a failed login).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::TlsNotOffered
                | Self::Tls(_)
                | Self::Timeout(_)
                | Self::Closed
                | Self::Io(_)
        )
    }
}

impl From<ReadError> for UpstreamError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => Self::Closed,
            ReadError::Codec(e) => Self::Protocol(e.to_string()),
            ReadError::Io(e) => Self::Io(e),
        }
    }
}

/// Connects and logs in to `target`, forwarding the allow-listed subset of the client's
/// startup parameters ([`FORWARDED_PARAMS`]).
pub async fn connect(
    target: &Target,
    client_params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let mut stream = open(&target.address, &target.tls).await?;
    match tokio::time::timeout(LOGIN_TIMEOUT, login(&mut stream, target, client_params)).await {
        Ok(Ok(login)) => Ok(Upstream {
            stream,
            params: login.params,
            backend_key: login.backend_key,
            notices: login.notices,
            ready: login.ready,
            auth: login.auth,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Timeout(LOGIN_TIMEOUT.as_secs())),
    }
}

/// Logs in to the target as a session would and leaves at once: the server's ParameterStatus
/// values (`is_superuser` says whether the broker's login is a superuser).
pub async fn probe(target: &Target) -> Result<Vec<(String, String)>, UpstreamError> {
    let mut upstream = connect(target, &[]).await?;
    let mut bye = BytesMut::new();
    crate::codec::Terminate.encode(&mut bye);
    // The parameters are what was asked for; a failed goodbye changes nothing.
    let _ = wire::send(&mut upstream.stream, &bye).await;
    Ok(upstream.params)
}

/// Opens the transport to `address`: TCP (with the engine's connect timeout and no delay),
/// then TLS unless `tls` is `Disable`. Shared with cancel requests, which PostgreSQL expects
/// over the same kind of connection.
pub(crate) async fn open(address: &str, tls: &TargetTls) -> Result<UpstreamStream, UpstreamError> {
    let mut tcp =
        sluice_engine::tcp::connect(address)
            .await
            .map_err(|e| UpstreamError::Unreachable {
                address: e.address,
                reason: e.reason,
            })?;
    let Some(config) = tls::client_config(tls).map_err(|e| UpstreamError::Config(e.to_string()))?
    else {
        return Ok(UpstreamStream::Plain(tcp));
    };
    let name = tls::server_name(tls, address).map_err(UpstreamError::Config)?;

    let negotiate = async {
        let mut buf = BytesMut::new();
        StartupPacket::SslRequest
            .encode(&mut buf)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        wire::send(&mut tcp, &buf)
            .await
            .map_err(UpstreamError::Io)?;
        // Exactly one byte: anything the server sent after it belongs to the handshake.
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                UpstreamError::Closed
            } else {
                UpstreamError::Io(e)
            }
        })?;
        match answer[0] {
            b'S' => {}
            b'N' => return Err(UpstreamError::TlsNotOffered),
            b'E' => {
                return Err(UpstreamError::Protocol(
                    "the target answered the SSLRequest with an error (a server older than 7.0?)"
                        .into(),
                ));
            }
            _ => {
                return Err(UpstreamError::Protocol(
                    "invalid answer to SSLRequest".into(),
                ));
            }
        }
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| UpstreamError::Tls(e.to_string()))
    };
    match tokio::time::timeout(LOGIN_TIMEOUT, negotiate).await {
        Ok(Ok(tls)) => Ok(UpstreamStream::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(UpstreamError::Timeout(LOGIN_TIMEOUT.as_secs())),
    }
}

/// What the login collected.
struct Login {
    params: Vec<(String, String)>,
    backend_key: Option<(i32, i32)>,
    notices: Vec<ErrorFields>,
    ready: ReadyForQuery,
    auth: AuthMethod,
}

/// The startup parameters sent to the target.
fn startup_params(target: &Target, client_params: &[(String, String)]) -> Vec<(String, String)> {
    let mut params = vec![
        ("user".to_owned(), target.user.clone()),
        ("database".to_owned(), target.database.clone()),
    ];
    params.extend(
        client_params
            .iter()
            .filter(|(name, _)| {
                FORWARDED_PARAMS
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(name))
            })
            .filter(|(name, _)| {
                !target
                    .settings
                    .iter()
                    .any(|(imposed, _)| imposed.eq_ignore_ascii_case(name))
            })
            .cloned(),
    );
    params.extend(target.settings.iter().cloned());
    params
}

async fn login(
    stream: &mut UpstreamStream,
    target: &Target,
    client_params: &[(String, String)],
) -> Result<Login, UpstreamError> {
    let mut buf = BytesMut::new();
    StartupPacket::StartupMessage {
        params: startup_params(target, client_params),
    }
    .encode(&mut buf)
    .map_err(|e| UpstreamError::Config(e.to_string()))?;
    wire::send(stream, &buf).await.map_err(UpstreamError::Io)?;

    let mut notices = Vec::new();
    let auth = authenticate(stream, target, &mut notices).await?;

    let mut params = Vec::new();
    let mut backend_key = None;
    loop {
        match next(stream).await? {
            BackendMessage::ParameterStatus(p) => params.push((p.name, p.value)),
            BackendMessage::BackendKeyData(k) => backend_key = Some((k.pid, k.key)),
            BackendMessage::NoticeResponse(n) => notices.push(n),
            BackendMessage::ErrorResponse(e) => return Err(server_error(&e)),
            BackendMessage::ReadyForQuery(ready) => {
                return Ok(Login {
                    params,
                    backend_key,
                    notices,
                    ready,
                    auth,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected {} after authentication",
                    describe(&other)
                )));
            }
        }
    }
}

/// Answers whatever the server asks until AuthenticationOk.
async fn authenticate(
    stream: &mut UpstreamStream,
    target: &Target,
    notices: &mut Vec<ErrorFields>,
) -> Result<AuthMethod, UpstreamError> {
    // Set once the broker has answered a request; a second request means the server is
    // fishing (PostgreSQL asks once), and the broker answers no more.
    let mut method: Option<AuthMethod> = None;
    loop {
        let request = match next(stream).await? {
            BackendMessage::Authentication(a) => a,
            BackendMessage::ErrorResponse(e) => return Err(server_error(&e)),
            BackendMessage::NoticeResponse(n) => {
                notices.push(n);
                continue;
            }
            // The broker asks for 3.0 without protocol options; a server that wants to
            // negotiate down still speaks 3.0, which is all the broker needs.
            BackendMessage::NegotiateProtocolVersion(_) => continue,
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected {} before authentication completed",
                    describe(&other)
                )));
            }
        };
        if let Authentication::Ok = request {
            return Ok(method.unwrap_or(AuthMethod::Trust));
        }
        if method.is_some() {
            return Err(UpstreamError::Protocol(
                "the target asked for authentication twice".into(),
            ));
        }
        let password = target.password.expose().as_bytes();
        method = Some(match request {
            Authentication::CleartextPassword => {
                send_password(stream, password.to_vec()).await?;
                AuthMethod::Cleartext
            }
            Authentication::Md5Password { salt } => {
                let hash = md5_hash(target.user.as_bytes(), password, salt);
                send_password(stream, hash.into_bytes()).await?;
                AuthMethod::Md5
            }
            Authentication::Sasl { mechanisms } => scram(stream, &mechanisms, password).await?,
            Authentication::SaslContinue { .. } | Authentication::SaslFinal { .. } => {
                return Err(UpstreamError::Protocol(
                    "SASL continuation without a SASL exchange".into(),
                ));
            }
            other @ Authentication::Unsupported { .. } => {
                return Err(UpstreamError::UnsupportedAuth(
                    other.method_name().to_owned(),
                ));
            }
            Authentication::Ok => return Ok(AuthMethod::Trust),
        });
    }
}

async fn send_password(
    stream: &mut UpstreamStream,
    password: Vec<u8>,
) -> Result<(), UpstreamError> {
    let mut buf = BytesMut::new();
    PasswordMessage {
        password: Secret::new(password),
    }
    .encode(&mut buf)
    .map_err(|e| UpstreamError::Config(e.to_string()))?;
    wire::send(stream, &buf).await.map_err(UpstreamError::Io)
}

/// The SCRAM-SHA-256 exchange, with channel binding to the server certificate when the
/// connection is TLS and the server offers SCRAM-SHA-256-PLUS.
async fn scram(
    stream: &mut UpstreamStream,
    mechanisms: &[String],
    password: &[u8],
) -> Result<AuthMethod, UpstreamError> {
    let offers = |m: &str| mechanisms.iter().any(|o| o == m);
    let cert_binding = match &*stream {
        UpstreamStream::Tls(tls) => tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls::end_point_binding(cert)),
        UpstreamStream::Plain(_) => None,
    };
    let (mechanism, binding, method) = match cert_binding {
        Some(data) if offers(SCRAM_SHA_256_PLUS) => (
            SCRAM_SHA_256_PLUS,
            Binding::EndPoint(data),
            AuthMethod::ScramSha256Plus,
        ),
        _ if offers(SCRAM_SHA_256) => {
            // "y" (could bind, server did not offer) lets a server that does offer -PLUS
            // detect a downgrade; "n" says the client cannot bind at all.
            let binding = if stream.is_tls() && !offers(SCRAM_SHA_256_PLUS) {
                Binding::Unrequested
            } else {
                Binding::Unsupported
            };
            (SCRAM_SHA_256, binding, AuthMethod::ScramSha256)
        }
        _ => {
            return Err(UpstreamError::UnsupportedAuth(format!(
                "SASL ({})",
                mechanisms.join(", ")
            )));
        }
    };

    let scram = Scram::new(password, binding);
    let mut buf = BytesMut::new();
    SaslInitialResponse {
        mechanism: mechanism.to_owned(),
        data: Some(scram.client_first()),
    }
    .encode(&mut buf)
    .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    wire::send(stream, &buf).await.map_err(UpstreamError::Io)?;

    let server_first = expect_sasl(stream, "AuthenticationSASLContinue", |a| match a {
        Authentication::SaslContinue { data } => Some(data),
        _ => None,
    })
    .await?;
    let (client_final, pending) = scram
        .client_final(&server_first)
        .map_err(UpstreamError::Scram)?;

    let mut buf = BytesMut::new();
    SaslResponse { data: client_final }
        .encode(&mut buf)
        .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    wire::send(stream, &buf).await.map_err(UpstreamError::Io)?;

    let server_final = expect_sasl(stream, "AuthenticationSASLFinal", |a| match a {
        Authentication::SaslFinal { data } => Some(data),
        _ => None,
    })
    .await?;
    // Proves the server knows the password (or its verifier): an impostor fails here.
    pending.verify(&server_final).map_err(|e| {
        UpstreamError::Scram(format!("the target's final message does not verify: {e}"))
    })?;
    Ok(method)
}

/// Reads the next SASL step, turning an ErrorResponse into the server's error.
async fn expect_sasl(
    stream: &mut UpstreamStream,
    expected: &str,
    pick: impl Fn(Authentication) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, UpstreamError> {
    loop {
        match next(stream).await? {
            BackendMessage::Authentication(a) => {
                let name = a.method_name();
                return pick(a).ok_or_else(|| {
                    UpstreamError::Protocol(format!("expected {expected}, got a {name} request"))
                });
            }
            BackendMessage::ErrorResponse(e) => return Err(server_error(&e)),
            BackendMessage::NoticeResponse(_) => continue,
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "expected {expected}, got {}",
                    describe(&other)
                )));
            }
        }
    }
}

async fn next(stream: &mut UpstreamStream) -> Result<BackendMessage, UpstreamError> {
    let (tag, body) = wire::read_message(stream, MAX_LOGIN_MESSAGE).await?;
    BackendMessage::decode(tag, &body)
        .map_err(|e: CodecError| UpstreamError::Protocol(e.to_string()))
}

fn server_error(e: &ErrorFields) -> UpstreamError {
    UpstreamError::Server {
        code: e.code().unwrap_or("XX000").to_owned(),
        message: e.message().unwrap_or("(no message)").to_owned(),
    }
}

fn describe(m: &BackendMessage) -> &'static str {
    match m {
        BackendMessage::Authentication(_) => "Authentication",
        BackendMessage::ParameterStatus(_) => "ParameterStatus",
        BackendMessage::BackendKeyData(_) => "BackendKeyData",
        BackendMessage::ReadyForQuery(_) => "ReadyForQuery",
        BackendMessage::ErrorResponse(_) => "ErrorResponse",
        BackendMessage::NoticeResponse(_) => "NoticeResponse",
        BackendMessage::NegotiateProtocolVersion(_) => "NegotiateProtocolVersion",
    }
}

/// Shuts the stream down, ignoring errors; used when a connection is abandoned.
pub(crate) async fn close(stream: &mut UpstreamStream) {
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests;
