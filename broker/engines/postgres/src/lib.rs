//! The PostgreSQL engine of the broker: it terminates the client's side of the protocol, logs
//! in to the real server with a credential only the broker holds, and relays.
//!
//! ```text
//!  psql ──TCP──▶ sluice CLI ══TLS tunnel══▶ sluiced ──▶ session::serve
//!                                                         │
//!        client.rs: SSLRequest→'N', StartupMessage,       │  tunnel secret as the password
//!                   cleartext password = tunnel secret ◀──┘  (never the target's)
//!        upstream.rs: TCP [+TLS] to the target, StartupMessage(user, database, allow-listed
//!                     params), trust / cleartext / MD5 / SCRAM-SHA-256[-PLUS]
//!        session.rs: AuthenticationOk + ParameterStatus + BackendKeyData(broker key) +
//!                    ReadyForQuery to the client, then sluice_engine::relay until either
//!                    side closes or the lease ends
//!        cancel.rs: broker keys ↔ real keys; CancelRequests are forwarded only for the
//!                   session's own subject
//! ```
//!
//! The client never receives the target credential in any form (not even a hash: the broker
//! does the MD5/SCRAM exchange itself), and no error or log line carries it: it is a
//! [`sluice_shared::Secret`] used in exactly one module ([`upstream`]).
//!
//! [`codec`] is the pure wire format (no I/O); everything else is async on tokio.

pub mod cancel;
pub mod catalog;
pub mod client;
pub mod codec;
pub mod hooks;
pub mod proxy;
pub mod session;
mod tls;
pub mod upstream;
mod wire;

pub use cancel::{CancelGuard, CancelRegistry, Elsewhere, RemoteCancel};
pub use client::{ClientError, ClientHello, Refusal, accept_startup, authenticate, check_params};
pub use session::{
    AsGiven, SessionError, SessionKind, SessionParams, SessionStart, SessionSummary, StartFuture,
    Started, serve,
};
pub use upstream::{
    AuthMethod, Target, TargetTls, Upstream, UpstreamError, UpstreamStream, connect, probe,
};
