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

/// `GET /v1/health` (HTTP 503 unless every check passes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the broker can serve tunnels; `"failing"` when a check failed.
    pub status: String,
    /// Each dependency (`store`, `recordings`) with `"ok"` or what is wrong with it.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// The kind of a resource, which decides the protocol engine that serves its tunnels.
///
/// On the wire it is the kind's name; a name this build does not know reads as
/// [`ResourceKind::Other`], so an older CLI still lists resources of kinds added after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ResourceKind {
    /// PostgreSQL: the broker terminates the protocol and logs in with its own credential.
    Postgres,
    /// Any TCP service: an opaque relay.
    Tcp,
    /// An SSH host: the broker terminates SSH and logs in with its own credential.
    Ssh,
    /// A Kubernetes API server: the broker terminates HTTP, decides each API request and calls
    /// the server with its own credential.
    Kubernetes,
    /// An HTTP service: the broker terminates HTTP, decides each request by method and path,
    /// and calls the service with its own credential.
    Http,
    /// A kind this build does not know, by name.
    Other(String),
}

impl ResourceKind {
    /// The name used in config files and on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Postgres => "postgres",
            Self::Tcp => "tcp",
            Self::Ssh => "ssh",
            Self::Kubernetes => "kubernetes",
            Self::Http => "http",
            Self::Other(name) => name,
        }
    }
}

impl From<String> for ResourceKind {
    fn from(name: String) -> Self {
        match name.as_str() {
            "postgres" => Self::Postgres,
            "tcp" => Self::Tcp,
            "ssh" => Self::Ssh,
            "kubernetes" => Self::Kubernetes,
            "http" => Self::Http,
            _ => Self::Other(name),
        }
    }
}

impl From<ResourceKind> for String {
    fn from(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Other(name) => name,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// For postgres: whether the broker's own login to the target is a database superuser
    /// (then the guardrails alone limit what a session can do); `None` when not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_superuser: Option<bool>,
    /// For ssh: the broker's SSH host key (`ssh-ed25519 AAAA…`), which `sluice ssh` pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_host_key: Option<String>,
    /// Things the user should know before connecting, for the CLI to print.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
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
    /// The identity provider or workload rule that vouched for the subject.
    #[serde(default)]
    pub provider: Option<String>,
    /// CI claims of a workload identity (repository, workflow, ...).
    #[serde(default)]
    pub ci: std::collections::BTreeMap<String, String>,
}

/// `GET /v1/auth/config` (unauthenticated): what the CLI needs to start a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// Identity providers for people (device flow).
    pub oidc: Vec<OidcProvider>,
    /// Workload trust rules, so a CI job knows which audience to request.
    pub workload: Vec<WorkloadTrust>,
}

/// One identity provider for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    /// The broker's name for it.
    pub name: String,
    /// Issuer URL (discovery lives under it).
    pub issuer: String,
    /// The public client the CLI uses for device flow.
    pub client_id: String,
    /// Scopes to request.
    pub scopes: Vec<String>,
}

/// One workload trust rule, as far as a CI job needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadTrust {
    /// The rule's name.
    pub name: String,
    /// `github`, `gitlab`, `kubernetes`, or absent for a custom issuer.
    pub preset: Option<String>,
    /// The `aud` the platform token must be requested with.
    pub audience: String,
}

/// Which kind of identity token is being exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A person's OIDC ID token.
    Oidc,
    /// A CI job's or workload's platform token.
    Workload,
}

/// `POST /v1/auth/token`: exchange an identity token for a broker session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeRequest {
    /// What kind of token this is; a token of the other kind is refused.
    pub kind: TokenKind,
    /// The identity token (a JWT).
    pub token: String,
}

/// The session token minted by an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeResponse {
    /// The broker session token.
    pub token: String,
    /// Subject it was issued to.
    pub subject: String,
    /// Groups it carries.
    pub groups: Vec<String>,
    /// `oidc` or `workload`.
    pub auth_method: String,
    /// Expiry, seconds since the Unix epoch (never after the exchanged token's own expiry).
    pub expires_at: u64,
}

/// `GET /v1/resources`: the resources the caller may request a role on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceList {
    /// In configuration order.
    pub resources: Vec<ResourceInfo>,
}

/// One resource and the roles the caller may request on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceInfo {
    /// Resource name.
    pub name: String,
    /// Resource kind.
    pub kind: ResourceKind,
    /// Free text from the configuration.
    #[serde(default)]
    pub description: Option<String>,
    /// Labels from the configuration.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Requestable roles, the default first.
    pub roles: Vec<RoleInfo>,
}

/// A role as a requester sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleInfo {
    /// Role name.
    pub name: String,
    /// The rule that makes it requestable.
    pub rule: String,
    /// The longest grant, seconds.
    pub max_ttl_secs: u64,
    /// Whether someone has to approve it, and who.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// Free text from the configuration.
    #[serde(default)]
    pub description: Option<String>,
}

/// One column by its schema, table and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifiedColumn {
    /// Schema.
    pub schema: String,
    /// Table or view.
    pub table: String,
    /// Column.
    pub column: String,
}

/// `POST /v1/grants/{id}/masked-columns`: which of these columns the grant's masking rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedColumnsRequest {
    /// At most [`MAX_MASKED_COLUMNS`].
    pub columns: Vec<QualifiedColumn>,
}

/// Most columns one masked-columns request may ask about.
pub const MAX_MASKED_COLUMNS: usize = 10_000;

/// The answer: per column asked about, in order, the rule that masks it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedColumns {
    /// The masking rule for each column, `None` when no column rule applies.
    pub rules: Vec<Option<String>>,
    /// Detectors that mask matching values in any column (`email`, `credit_card`, ...).
    #[serde(default)]
    pub detectors: Vec<String>,
}

/// `POST /v1/auth/agent`: a session token for an MCP server acting for the caller. It carries
/// the caller's identity, says the session came through MCP and names the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTokenRequest {
    /// The MCP client as it named itself (`claude-code 1.2.0`); shown in session lists.
    pub client: String,
}

/// `POST /v1/agents/tool-calls`: one MCP tool call, for the audit trail (never values).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallReport {
    /// The tool name.
    pub tool: String,
    /// The resource it named, if any.
    #[serde(default)]
    pub resource: Option<String>,
    /// `ok`, `error` or `protocol-error`.
    pub outcome: String,
}
