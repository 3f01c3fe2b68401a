//! Request and response bodies of the broker's HTTPS API.

use serde::{Deserialize, Serialize};

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Always `"sluiced"`.
    pub name: String,
    /// The broker's crate version.
    pub version: String,
    /// Tunnel protocol the broker speaks (see [`crate::tunnel::PROTOCOL`]).
    pub tunnel_protocol: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the broker serves requests.
    pub status: String,
}

/// The kind of a resource, which decides the protocol engine that serves its tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// PostgreSQL: the broker terminates the protocol and logs in with its own credential.
    Postgres,
    /// Any TCP service: an opaque relay.
    Tcp,
}

impl ResourceKind {
    /// The name used in config files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Tcp => "tcp",
        }
    }
}

/// `GET /v1/resources/{name}/check`: the caller may open tunnels to this resource and the target
/// answered a TCP connect just now. Carries what the CLI needs to tell the user how to connect;
/// never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCheck {
    /// Resource name.
    pub name: String,
    /// Resource kind.
    pub kind: ResourceKind,
    /// For postgres: the database the broker connects to.
    pub database: Option<String>,
    /// The identity the broker authenticated the caller as.
    pub subject: String,
}

/// `GET /v1/whoami`: the identity behind the presented session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Subject (user or workload name).
    pub subject: String,
    /// Groups the subject belongs to.
    pub groups: Vec<String>,
    /// How the token was obtained (`operator` for `sluiced token issue`).
    pub auth_method: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Token id.
    pub token_id: String,
}
