//! [`serve`]: one tunnel to a PostgreSQL resource, from the client's first byte to the end of
//! the relay. The only entry point the broker calls.
//!
//! ```text
//! accept_startup ─┬─ Cancel ──▶ registry.cancel ──▶ done (no answer, as PostgreSQL)
//!                 └─ Startup ──▶ authenticate (tunnel secret) ──▶ check_params
//!                    ──▶ upstream::connect (broker's credential)
//!                    ──▶ to the client: AuthenticationOk, notices, ParameterStatus*,
//!                        BackendKeyData(broker pid, key), ReadyForQuery
//!                    ──▶ relay(client, target, lease)
//! ```
//!
//! Everything before the relay races the lease: if access ends during login the client gets
//! FATAL 57P01 and the target connection is dropped. Failures become one FATAL ErrorResponse
//! for the client (sent here, or by [`crate::client`] for its own) and a [`SessionError`] for
//! the broker's log. Neither ever contains the target credential.

use crate::cancel::{CancelGuard, CancelRegistry};
use crate::client::{self, ClientError, ClientHello, Refusal};
use crate::codec::{
    Authentication, BackendKeyData, CodecError, ErrorFields, ParameterStatus, Severity,
};
use crate::upstream::{self, Target, Upstream, UpstreamError};
use crate::wire;
use bytes::BytesMut;
use sluice_engine::{Lease, RelayEnd, RelayOutcome};
use sluice_shared::Secret;
use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// What the broker does once a tunnel turns out to carry a session rather than a cancel
/// request: open the session's record and build what it enforces.
pub trait SessionStart: Send {
    /// Starts the session: `Some` replaces the enforcement and settings in the
    /// [`SessionParams`], `None` keeps them; `Err` refuses the session with a message for the
    /// client (FATAL 57P03).
    fn start(&mut self) -> StartFuture<'_>;

    /// Called once the target accepted the broker's login, with the server's ParameterStatus
    /// values (`is_superuser`, `server_version`, ...), before the client hears of it. `Err`
    /// refuses the session with a message for the client (FATAL 57P03).
    fn logged_in(&mut self, _params: &[(String, String)]) -> Result<(), String> {
        Ok(())
    }
}

/// What [`SessionStart::start`] returns.
pub type StartFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Started>, String>> + Send + 'a>>;

/// Starts nothing: the [`SessionParams`] already carry the enforcement (tests, tools).
#[derive(Debug, Default)]
pub struct AsGiven;

impl SessionStart for AsGiven {
    fn start(&mut self) -> StartFuture<'_> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// A started session's enforcement and the settings its upstream login imposes.
#[derive(Debug, Default)]
pub struct Started {
    /// Guard, approvals, masking and journal.
    pub enforcement: crate::hooks::Enforcement,
    /// Startup parameters the broker imposes on the target login.
    pub settings: Vec<(String, String)>,
}

/// What the broker knows about a tunnel before it starts: who, with which secret, to where.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// The authenticated identity that opened the tunnel (for cancel ownership and logs).
    pub subject: String,
    /// The one-time secret the local client must present as its password.
    pub tunnel_secret: Secret<String>,
    /// The server and credential behind the resource.
    pub target: Target,
    /// Guard, approvals and masking for the session; empty for a plain relay.
    pub enforcement: crate::hooks::Enforcement,
}

/// What kind of connection the tunnel carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A query session that was relayed.
    Query,
    /// A cancel request, forwarded to the target or not (the client is never told which).
    Cancel {
        /// Whether a CancelRequest with the real key went to the target.
        forwarded: bool,
    },
}

/// How a tunnel ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// Query session or cancel request.
    pub kind: SessionKind,
    /// The relay's outcome, for query sessions.
    pub relay: Option<RelayOutcome>,
}

/// Why a tunnel ended before its relay. The client has already been told, where the protocol
/// allows; the caller only logs this.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The client broke the protocol, timed out or hung up during login.
    #[error(transparent)]
    Client(ClientError),
    /// The client's password was not the tunnel secret.
    #[error("the client presented a wrong tunnel secret")]
    AuthFailed,
    /// The client asked for something the resource does not offer (another database,
    /// replication).
    #[error("refused the client's startup parameters: {0}")]
    Refused(Refusal),
    /// The broker could not reach or log in to the target.
    #[error("upstream login failed: {0}")]
    Upstream(#[source] UpstreamError),
    /// A matching cancel request could not be delivered to the target.
    #[error("cancel request not delivered: {0}")]
    Cancel(#[source] UpstreamError),
    /// The lease ended before the relay started.
    #[error("access ended during login: {0}")]
    Revoked(String),
    /// The broker could not start the session (its recording, its catalog, its role).
    #[error("the session could not start: {0}")]
    NotStarted(String),
    /// Writing the login answer to the client failed.
    #[error("I/O error with the client: {0}")]
    ClientIo(#[source] io::Error),
    /// A message for the client could not be encoded (a server parameter with a NUL).
    #[error("cannot encode a message for the client: {0}")]
    Encode(#[source] CodecError),
}

impl From<ClientError> for SessionError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::WrongSecret => Self::AuthFailed,
            other => Self::Client(other),
        }
    }
}

impl SessionError {
    /// The FATAL error the client should see for failures this module reports (client.rs
    /// reports its own), or `None`.
    fn client_report(&self, target: &Target) -> Option<ErrorFields> {
        let fatal = |code: &str, message: String| ErrorFields::new(Severity::Fatal, code, message);
        match self {
            Self::Refused(r) => Some(r.to_fields()),
            Self::Revoked(reason) => Some(fatal(
                "57P01",
                format!("sluice: access to this resource ended: {reason}"),
            )),
            // cannot_connect_now: the broker, not the client, is not ready for this session.
            Self::NotStarted(reason) => Some(fatal("57P03", format!("sluice: {reason}"))),
            Self::Upstream(e) if e.is_unreachable() => Some(fatal(
                "08001",
                format!(
                    "sluice: cannot reach the target of this resource ({}): {}",
                    target.address,
                    unreachable_reason(e)
                ),
            )),
            Self::Upstream(UpstreamError::Server { code, message }) => {
                // The server's own code (28P01, 3D000, 53300, ...) says best what happened;
                // its message never contains the password.
                Some(fatal(
                    code,
                    format!("sluice: the broker could not log in to the target: {message}"),
                ))
            }
            Self::Upstream(e) => Some(fatal(
                "28000",
                format!("sluice: the broker could not log in to the target: {e}"),
            )),
            Self::Encode(_) => Some(fatal(
                "XX000",
                "sluice: internal error preparing the session".into(),
            )),
            Self::Client(_) | Self::AuthFailed | Self::Cancel(_) | Self::ClientIo(_) => None,
        }
    }
}

/// The reason part of an unreachable error, without repeating the address.
fn unreachable_reason(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Unreachable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// What the login phase produced.
enum Login {
    /// A cancel request, handled; whether it reached the target.
    Cancel { forwarded: bool },
    /// A logged-in target connection.
    Ready(Upstream),
}

/// Serves one tunnel to a PostgreSQL resource. See the module docs for the sequence.
pub async fn serve<C>(
    client: &mut C,
    mut params: SessionParams,
    cancels: &CancelRegistry,
    lease: Lease,
    start: &mut dyn SessionStart,
) -> Result<SessionSummary, SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut watch = lease.clone();
    let login = tokio::select! {
        // Biased so an already-ended lease wins before any work is done.
        biased;
        reason = watch.revoked() => Err(SessionError::Revoked(reason)),
        result = login(client, &mut params, cancels, start) => result,
    };
    let mut upstream = match login {
        Ok(Login::Cancel { forwarded }) => {
            // As PostgreSQL does after a CancelRequest: close without a word.
            let _ = client.shutdown().await;
            return Ok(SessionSummary {
                kind: SessionKind::Cancel { forwarded },
                relay: None,
            });
        }
        Ok(Login::Ready(upstream)) => upstream,
        Err(e) => return Err(report(client, &params.target, e).await),
    };

    let guard = upstream.backend_key.map(|real| {
        cancels.register(
            &params.subject,
            real,
            &params.target.address,
            &params.target.tls,
        )
    });
    let mut greeting = BytesMut::new();
    if let Err(e) = greeting_bytes(
        &mut greeting,
        &upstream,
        guard.as_ref().map(|g| (g.pid(), g.key())),
    ) {
        return Err(report(client, &params.target, SessionError::Encode(e)).await);
    }
    wire::send(client, &greeting)
        .await
        .map_err(SessionError::ClientIo)?;
    tracing::debug!(
        subject = %params.subject,
        target = %params.target.address,
        auth = ?upstream.auth,
        tls = upstream.stream.is_tls(),
        "postgres session logged in, relaying"
    );

    let outcome = if params.enforcement.is_passthrough() {
        sluice_engine::relay(client, &mut upstream.stream, lease).await
    } else {
        // Without a cancel key the signal is never reached: held statements only end by a
        // decision, the lease or the client going away.
        let cancel = guard.as_ref().map(CancelGuard::signal).unwrap_or_default();
        crate::proxy::proxy(
            client,
            &mut upstream.stream,
            &params.enforcement,
            lease,
            &cancel,
        )
        .await
    };
    if let (RelayEnd::Revoked(reason), Some(guard)) = (&outcome.end, &guard) {
        // Closing the socket does not stop a running query: PostgreSQL only notices a gone
        // client when it next reads or writes. Cancel it so access really ends now, after
        // closing the client's side so its disconnect does not wait for the cancel.
        let _ = client.shutdown().await;
        match cancels
            .cancel(&params.subject, guard.pid(), guard.key())
            .await
        {
            Ok(_) => tracing::debug!(%reason, "cancelled the running statement after revocation"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot cancel the target's statement after revocation")
            }
        }
    }
    drop(guard);
    Ok(SessionSummary {
        kind: SessionKind::Query,
        relay: Some(outcome),
    })
}

/// Everything up to a logged-in target connection.
async fn login<C>(
    client: &mut C,
    params: &mut SessionParams,
    cancels: &CancelRegistry,
    start: &mut dyn SessionStart,
) -> Result<Login, SessionError>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let startup = match client::accept_startup(client).await? {
        ClientHello::Cancel { pid, key } => {
            let forwarded = cancels
                .cancel(&params.subject, pid, key)
                .await
                .map_err(SessionError::Cancel)?;
            tracing::debug!(subject = %params.subject, forwarded, "postgres cancel request");
            return Ok(Login::Cancel { forwarded });
        }
        ClientHello::Startup { params } => params,
    };
    // A session, not a cancel request: only now does the broker open its record and build
    // its enforcement (catalog, recording), so a Ctrl-C costs none of that.
    if let Some(started) = start.start().await.map_err(SessionError::NotStarted)? {
        params.enforcement = started.enforcement;
        params.target.settings = started.settings;
    }
    client::authenticate(client, &params.tunnel_secret).await?;
    client::check_params(&startup, &params.target.database).map_err(SessionError::Refused)?;
    let upstream = upstream::connect(&params.target, &startup)
        .await
        .map_err(SessionError::Upstream)?;
    start
        .logged_in(&upstream.params)
        .map_err(SessionError::NotStarted)?;
    Ok(Login::Ready(upstream))
}

/// AuthenticationOk, the login notices, the server's ParameterStatus, the broker's
/// BackendKeyData (if the server gave one to map), ReadyForQuery.
fn greeting_bytes(
    buf: &mut BytesMut,
    upstream: &Upstream,
    key: Option<(i32, i32)>,
) -> Result<(), CodecError> {
    Authentication::Ok.encode(buf)?;
    for notice in &upstream.notices {
        notice.encode_notice(buf)?;
    }
    for (name, value) in &upstream.params {
        ParameterStatus {
            name: name.clone(),
            value: value.clone(),
        }
        .encode(buf)?;
    }
    if let Some((pid, key)) = key {
        BackendKeyData { pid, key }.encode(buf);
    }
    upstream.ready.encode(buf);
    Ok(())
}

/// Sends the client the FATAL error for `e` (if this module reports it), closes, returns `e`.
async fn report<C>(client: &mut C, target: &Target, e: SessionError) -> SessionError
where
    C: AsyncWrite + Unpin + Send,
{
    if let Some(fields) = e.client_report(target) {
        client::send_fatal(client, &fields).await;
    }
    e
}

#[cfg(test)]
mod tests;
