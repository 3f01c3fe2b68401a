//! The typed configuration the broker runs on.
//!
//! Values here are already validated: addresses have a port, durations are ordered, rules name
//! resources that exist, secrets are references rather than values. Anything the broker may still
//! fail on later (a file, an environment variable) is kept [`Located`] so that failure can name the
//! line that referenced it. New sections are added as new fields and types here (or, for the
//! policy, in `policy.rs`), with their readers in `schema.rs` or a sibling module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sluice_shared::api::ResourceKind;

use crate::credential::CredentialRef;
use crate::location::{Located, Location};
use crate::policy::Policy;

/// The whole `sluiced` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from, so later messages and reloads can name it.
    pub source: PathBuf,
    /// Where the broker's HTTPS API and tunnel listener accepts connections.
    pub listen: SocketAddr,
    /// The broker's own TLS identity; TLS is always on because tokens cross this connection.
    pub tls: TlsConfig,
    /// How broker session tokens are signed and how long they live.
    pub tokens: TokensConfig,
    /// The broker's own embedded database (grants, audit).
    pub store: StoreConfig,
    /// Where and how long session recordings are kept.
    pub recording: RecordingConfig,
    /// The targets the broker can open tunnels to, in file order.
    pub resources: Vec<Resource>,
    /// Roles, and who may request which of them on which resources.
    pub policy: Policy,
    /// How people (OIDC) and workloads (CI, agents) prove who they are; empty when absent, so
    /// only operator tokens are accepted.
    pub identity: IdentityConfig,
    /// Bounds on what the broker holds open (`limits`).
    pub limits: LimitsConfig,
    /// `GET /metrics` (`metrics`); absent, the endpoint answers 404.
    pub metrics: Option<MetricsConfig>,
}

/// `metrics`: the Prometheus endpoint and the bearer token a scraper must send to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `token` (`env:NAME` or `file:PATH`): what `Authorization: Bearer` must carry.
    pub token: Located<CredentialRef>,
}

/// `limits`: what one broker holds open at most, and how long it drains when stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Tunnels (sessions) open at once (`max_tunnels`, default 4096); beyond it a tunnel is
    /// refused with `unavailable` until one closes. Each holds a slot for its whole life.
    pub max_tunnels: u32,
    /// How long a stopping broker waits for sessions to write their end and recording
    /// (`shutdown_grace`, default 10s, at most 10m).
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_tunnels: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// The resource with this name, if configured.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|resource| resource.name == name)
    }
}

/// The broker's listener certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: Located<PathBuf>,
    /// PEM private key of the leaf certificate.
    pub key: Located<PathBuf>,
    /// The CA clients should trust (written by `sluiced init`); only used in messages that tell
    /// an operator what to hand to the CLI.
    pub ca: Option<Located<PathBuf>>,
}

/// Broker session tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokensConfig {
    /// Ed25519 PKCS#8 PEM key that signs session tokens.
    pub signing_key: Located<PathBuf>,
    /// Lifetime of a token when the request does not ask for one.
    pub default_ttl: Duration,
    /// Longest lifetime a token may be issued with; bounds the damage of a leaked token.
    pub max_ttl: Duration,
}

/// The broker's own store (`store`): one of `sqlite` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `sqlite`: the database file of a single broker; created on first start, its directory
    /// must exist.
    Sqlite(Located<PathBuf>),
    /// `postgres`: a server several brokers share.
    Postgres(PostgresStore),
}

impl StoreConfig {
    /// The SQLite file, for a SQLite store.
    pub fn sqlite(&self) -> Option<&Located<PathBuf>> {
        match self {
            StoreConfig::Sqlite(path) => Some(path),
            StoreConfig::Postgres(_) => None,
        }
    }
}

/// `store.postgres`: where the shared store lives and how the broker logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresStore {
    /// `url`: `postgres://USER@HOST:PORT/DATABASE`, never with a password in it.
    pub url: Located<String>,
    /// `password` (`env:NAME` or `file:PATH`), if the server asks for one.
    pub password: Option<Located<CredentialRef>>,
    /// `ca`: the CA certificate (PEM) the server's certificate must chain to; the connection
    /// is TLS with the host name verified. Required unless the host is a loopback address.
    pub ca: Option<Located<PathBuf>>,
}

/// Session recordings (`recording`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// The directory recordings are written to (`dir`, default `recordings` beside the store's
    /// SQLite file); created on first start.
    pub dir: Located<PathBuf>,
    /// How long a recording is kept (`retention`, default 90 days).
    pub retention: Duration,
    /// S3-compatible object storage instead of the directory (`s3`).
    pub s3: Option<S3Recording>,
}

/// `recording.s3`: a bucket of S3-compatible object storage that recordings are written to,
/// one object per chunk as sessions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Recording {
    /// `bucket`.
    pub bucket: String,
    /// `endpoint` (an `https://` URL, or `http://` on a loopback address); AWS when absent.
    pub endpoint: Option<String>,
    /// `region` (default `us-east-1`).
    pub region: String,
    /// `prefix` of every key (default none).
    pub prefix: String,
    /// `access_key_id`.
    pub access_key_id: Located<CredentialRef>,
    /// `secret_access_key`.
    pub secret_access_key: Located<CredentialRef>,
    /// `encryption`: what the bucket encrypts each object with (default: the bucket's own
    /// setting).
    pub encryption: Option<S3Encryption>,
}

/// `recording.s3.encryption`: server-side encryption asked for on every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Encryption {
    /// `aes256` (SSE-S3: keys the storage manages).
    Aes256,
    /// `kms` (SSE-KMS), with `kms_key_id`, or the bucket's default KMS key without.
    Kms(Option<String>),
}

/// A target the broker relays to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Unique name users and rules refer to (`[a-z0-9][a-z0-9-_.]{0,62}`).
    pub name: String,
    /// Free text shown in listings.
    pub description: Option<String>,
    /// Free-form labels (environment, team) for listings and for rules that select by label.
    pub labels: BTreeMap<String, String>,
    /// What the target is and how to reach it.
    pub spec: ResourceSpec,
    /// Where the resource's name is written, for errors found after loading.
    pub location: Location,
}

impl Resource {
    /// The kind, which picks the protocol engine.
    pub fn kind(&self) -> ResourceKind {
        self.kind_ref().clone()
    }

    /// The kind, borrowed.
    pub fn kind_ref(&self) -> &ResourceKind {
        const POSTGRES: &ResourceKind = &ResourceKind::Postgres;
        const TCP: &ResourceKind = &ResourceKind::Tcp;
        const SSH: &ResourceKind = &ResourceKind::Ssh;
        const KUBERNETES: &ResourceKind = &ResourceKind::Kubernetes;
        const HTTP: &ResourceKind = &ResourceKind::Http;
        match self.spec {
            ResourceSpec::Postgres(_) => POSTGRES,
            ResourceSpec::Tcp(_) => TCP,
            ResourceSpec::Ssh(_) => SSH,
            ResourceSpec::Kubernetes(_) => KUBERNETES,
            ResourceSpec::Http(_) => HTTP,
        }
    }

    /// The target's `host:port`.
    pub fn address(&self) -> &str {
        match &self.spec {
            ResourceSpec::Postgres(spec) => &spec.address,
            ResourceSpec::Tcp(spec) => &spec.address,
            ResourceSpec::Ssh(spec) => &spec.address,
            ResourceSpec::Kubernetes(spec) => &spec.address,
            ResourceSpec::Http(spec) => &spec.address,
        }
    }
}

/// Kind-specific settings of a resource.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per resource at load; unboxed variants keep matching simple for callers"
)]
pub enum ResourceSpec {
    /// A PostgreSQL server the broker logs in to with its own credential.
    Postgres(PostgresSpec),
    /// Any TCP service, relayed opaquely.
    Tcp(TcpSpec),
    /// An SSH host the broker logs in to with its own key.
    Ssh(SshSpec),
    /// A Kubernetes API server the broker calls with its own credential.
    Kubernetes(KubeSpec),
    /// An HTTP service the broker calls with its own credential.
    Http(HttpSpec),
}

/// An HTTP service.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    /// `host:port` of the service.
    pub address: String,
    /// HTTPS with this CA pinned (`ca`); `None` for plain HTTP, which only a loopback address
    /// may use (`plaintext: true`).
    pub ca: Option<Located<PathBuf>>,
    /// The name the certificate must carry, when it is not the address's host.
    pub server_name: Option<String>,
    /// What the broker adds to every request (`inject`).
    pub inject: HttpInject,
    /// A signed assertion of who is calling, sent with every request (`identity`).
    pub identity: Option<IdentityAssertion>,
    /// A client certificate the broker presents to the service (mutual TLS).
    pub client_cert: Option<ClientCert>,
}

/// A client certificate and its private key, both PEM (`client_cert`, `client_key`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCert {
    /// The certificate (chain), PEM.
    pub cert: Located<CredentialRef>,
    /// Its private key, PEM.
    pub key: Located<CredentialRef>,
}

/// The credentials the broker adds to every request to an HTTP service; none of it ever reaches
/// the client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpInject {
    /// `Authorization: Bearer <secret>` (`bearer`), or basic auth (`basic: {user, password}`).
    pub authorization: Option<Located<HttpAuthorization>>,
    /// Named headers and their secrets (`headers: {X-Api-Key: env:KEY}`).
    pub headers: Vec<(String, Located<CredentialRef>)>,
}

/// The `Authorization` header the broker sends.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuthorization {
    /// `Bearer <token>`.
    Bearer(CredentialRef),
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name (not a secret).
        user: String,
        /// The password.
        password: CredentialRef,
    },
}

/// `identity: {header, ttl}` of an HTTP resource: a JWT of the caller signed by the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityAssertion {
    /// The header that carries it (default `Sluice-Identity`).
    pub header: String,
    /// How long each assertion is valid (default 5 minutes).
    pub ttl: std::time::Duration,
}

/// A Kubernetes API server.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSpec {
    /// `host:port` of the API server (always HTTPS).
    pub address: String,
    /// The CA that signed the API server's certificate (pinned: nothing else is trusted), and
    /// the name to check when it is not the address's host.
    pub ca: Located<PathBuf>,
    /// The name the certificate must carry, when it is not the address's host.
    pub server_name: Option<String>,
    /// The broker's bearer token (`token: file:/env:`), when it logs in with one.
    pub token: Option<Located<CredentialRef>>,
    /// The broker's client certificate and key (`client_cert`, `client_key`: PEM, `file:`/
    /// `env:`), when the API server authenticates it by certificate.
    pub client_cert: Option<ClientCert>,
    /// Send `Impersonate-User` (the Sluice subject) and `Impersonate-Group` (the role's
    /// `kube.groups`) so the cluster's RBAC and audit log see the person (`impersonate`).
    pub impersonate: bool,
}

/// An SSH host.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSpec {
    /// `host:port`.
    pub address: String,
    /// The login the broker uses on the host.
    pub user: String,
    /// How the broker logs in (`key`, `password` or `ca`); never the secret itself.
    pub credential: Located<SshCredential>,
    /// The host's key, pinned: `ssh-ed25519 AAAA…` (as in known_hosts) or `SHA256:…`.
    pub host_key: Located<String>,
}

/// How the broker logs in to an SSH host.
#[derive(Debug, Clone, PartialEq)]
pub enum SshCredential {
    /// A private key (OpenSSH format) the host's `authorized_keys` lists (`key:`).
    Key(CredentialRef),
    /// A password (`password:`).
    Password(CredentialRef),
    /// A user certificate authority's private key (`ca:`): the broker signs a certificate for
    /// each login, valid for `ttl` (`certificate_ttl`, default 5 minutes); the host trusts the
    /// CA with `TrustedUserCAKeys`.
    Ca {
        /// The CA's private key.
        key: CredentialRef,
        /// How long each certificate is valid.
        ttl: std::time::Duration,
    },
}

impl SshCredential {
    /// The secret behind it.
    pub fn secret(&self) -> &CredentialRef {
        match self {
            Self::Key(secret) | Self::Password(secret) | Self::Ca { key: secret, .. } => secret,
        }
    }
}

/// A PostgreSQL target.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSpec {
    /// `host:port` (validated: non-empty host, port 1..=65535; IPv6 hosts in brackets).
    pub address: String,
    /// The database the broker connects to; users never choose it.
    pub database: String,
    /// The role the broker logs in as.
    pub user: String,
    /// Where the broker finds that role's password; never the password itself.
    pub password: Located<CredentialRef>,
    /// TLS towards the server.
    pub tls: TargetTls,
    /// What to do when the broker's login turns out to be a superuser (`superuser_login`).
    pub superuser_login: SuperuserLogin,
}

/// `superuser_login` of a postgres resource: a superuser login leaves the guardrails as the only
/// limit on what a session can do (the server's own privileges check nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SuperuserLogin {
    /// Sessions go on; the check, the recording and the audit trail say so (the default).
    #[default]
    Allow,
    /// Sessions of roles with guardrails are refused on a superuser login.
    RefuseGuarded,
}

impl PostgresSpec {
    /// The name to verify the server certificate against: `tls.server_name`, or else the host
    /// part of the address (without IPv6 brackets).
    pub fn server_name(&self) -> &str {
        if let Some(name) = &self.tls.server_name {
            return name;
        }
        host_part(&self.address)
    }
}

/// The host of a validated `host:port`, without IPv6 brackets.
pub(crate) fn host_part(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// A plain TCP target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// `host:port`, validated like [`PostgresSpec::address`].
    pub address: String,
}

/// TLS from the broker to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTls {
    /// Whether and how strictly to use TLS.
    pub mode: TlsMode,
    /// CA bundle to verify the server with; always set when `mode` is `VerifyFull`.
    pub ca: Option<Located<PathBuf>>,
    /// Name to verify the certificate against, when it differs from the address host.
    pub server_name: Option<String>,
}

impl Default for TargetTls {
    /// No TLS: the default for a target on a trusted network, written out so it is a choice.
    fn default() -> Self {
        Self {
            mode: TlsMode::Disable,
            ca: None,
            server_name: None,
        }
    }
}

/// How the broker uses TLS towards a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// Plain text.
    Disable,
    /// Encrypt, but do not verify the server (protects against passive sniffing only).
    Require,
    /// Encrypt and verify the certificate chain and name against `ca`.
    VerifyFull,
}

impl TlsMode {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Default clock skew allowed on `exp`, `nbf` and `iat`.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default minimum interval between two JWKS refreshes of one issuer on an unknown `kid`.
pub(crate) const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default time cached keys stay usable while the identity provider is unreachable.
pub(crate) const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// The `identity` section: who may log in besides holders of operator tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Clock skew allowed when checking `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// At most one JWKS refresh per issuer per interval when a token names an unknown `kid`.
    pub jwks_refresh_interval: Duration,
    /// How long cached keys stay usable while the identity provider cannot be reached.
    pub jwks_max_stale: Duration,
    /// OpenID providers people log in through, in file order.
    pub oidc: Vec<OidcIssuer>,
    /// Trust rules for workload tokens (CI jobs, agents), in file order.
    pub workload: Vec<WorkloadIssuer>,
}

impl Default for IdentityConfig {
    /// No issuers and the default durations: only operator tokens are accepted.
    fn default() -> Self {
        Self {
            leeway: DEFAULT_LEEWAY,
            jwks_refresh_interval: DEFAULT_JWKS_REFRESH_INTERVAL,
            jwks_max_stale: DEFAULT_JWKS_MAX_STALE,
            oidc: Vec::new(),
            workload: Vec::new(),
        }
    }
}

impl IdentityConfig {
    /// The OIDC provider with this name, if configured.
    pub fn oidc_issuer(&self, name: &str) -> Option<&OidcIssuer> {
        self.oidc.iter().find(|issuer| issuer.name == name)
    }

    /// The workload trust rule with this name, if configured.
    pub fn workload_issuer(&self, name: &str) -> Option<&WorkloadIssuer> {
        self.workload.iter().find(|issuer| issuer.name == name)
    }
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `jwks_uri` from the issuer's `/.well-known/openid-configuration`.
    Discovery,
    /// A fixed JWKS URL (validated like the issuer URL).
    Uri(String),
    /// A JWKS document on disk, for air-gapped setups and tests.
    File(Located<PathBuf>),
}

/// An OpenID provider people log in through (device flow in the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    /// Unique among OIDC and workload names (`[a-z0-9][a-z0-9-_.]{0,62}`).
    pub name: String,
    /// The `iss` of its tokens: an https URL (http only on loopback), no query or fragment.
    pub issuer: String,
    /// The public client the CLI uses for the device flow.
    pub client_id: String,
    /// The `aud` the ID token must carry; `client_id` unless set.
    pub audience: String,
    /// Scopes requested; always contains `openid`.
    pub scopes: Vec<String>,
    /// Claim that holds the user name.
    pub username_claim: String,
    /// Claim that holds the list of groups.
    pub groups_claim: String,
    /// IdP group to broker groups; when not empty, unmapped IdP groups are dropped.
    pub group_mapping: BTreeMap<String, Vec<String>>,
    /// Where its signing keys come from.
    pub jwks: JwksSource,
    /// Where the entry is written, for errors found after loading.
    pub location: Location,
}

/// A known workload token issuer whose defaults live with the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadPreset {
    /// GitHub Actions OIDC tokens.
    Github,
    /// GitLab CI ID tokens.
    Gitlab,
    /// Kubernetes service-account tokens (the issuer is cluster-specific).
    Kubernetes,
}

impl WorkloadPreset {
    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// A trust rule for workload tokens: which issuer, audience and claims make a valid workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIssuer {
    /// Unique among OIDC and workload names (`[a-z0-9][a-z0-9-_.]{0,62}`).
    pub name: String,
    /// A known issuer whose defaults apply.
    pub preset: Option<WorkloadPreset>,
    /// The `iss` of its tokens; `None` only with the `github` or `gitlab` preset (their issuer is
    /// known to the verifier).
    pub issuer: Option<String>,
    /// The `aud` the token must carry.
    pub audience: String,
    /// Template of the broker subject, with `{claim}` or `{dotted.claim}` placeholders; `None`
    /// only with a preset (which supplies one).
    pub subject: Option<String>,
    /// Claim (possibly a dotted path) to pattern (exact, or glob with `*` and `?`), in file
    /// order; all must match.
    pub claims: Vec<(String, String)>,
    /// Broker groups granted to matching workloads.
    pub groups: Vec<String>,
    /// Where its signing keys come from.
    pub jwks: JwksSource,
    /// Where the entry is written, for errors found after loading.
    pub location: Location,
}
