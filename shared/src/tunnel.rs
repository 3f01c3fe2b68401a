//! The tunnel handshake: an HTTP/1.1 `Upgrade` request over TLS to the broker.
//!
//! ```text
//! GET /v1/tunnel HTTP/1.1
//! Host: broker.example:8443
//! Connection: Upgrade
//! Upgrade: sluice-tunnel/1
//! Authorization: Bearer <session token>
//! Sluice-Resource: pg-main
//! Sluice-Tunnel-Secret: <one-time secret the local client must present>   (postgres only)
//! ```
//!
//! The broker answers `101 Switching Protocols` and from then on the TLS stream carries the raw
//! bytes of one local connection, unframed. Any other status carries an [`crate::ApiError`] body.

/// Path of the tunnel endpoint.
pub const PATH: &str = "/v1/tunnel";
/// Value of the `Upgrade` header, versioned so the wire format can evolve.
pub const PROTOCOL: &str = "sluice-tunnel/1";
/// Header naming the resource the tunnel is for.
pub const RESOURCE_HEADER: &str = "sluice-resource";
/// Header carrying the one-time secret that the local client must present in its own
/// protocol's password step. Never logged.
pub const SECRET_HEADER: &str = "sluice-tunnel-secret";
/// Header carrying the local client's address as the CLI saw it, for the broker's records.
pub const CLIENT_ADDR_HEADER: &str = "sluice-client-addr";
