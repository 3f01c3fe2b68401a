//! The protocol engines the tunnel endpoint hands sessions to, by resource kind.
//!
//! Each engine is one file here (what it needs from the config and the broker, wired to its
//! protocol crate under `broker/engines/`) and one line in [`Registry::new`] and [`KINDS`]. The
//! tunnel endpoint, the API and the session records ask the registry and never match on a kind.
//!
//! ```text
//! tunnel::open ── gate ──▶ Authorized ──▶ registry[kind].prepare(headers, opener) ──▶ 101
//!                                                   │ (engine-specific checks, credentials)
//! tunnel::run ── session lease ──▶ Session::serve(stream, lease) ──▶ Served { opener, end }
//!                                   │ opens the record when the protocol says it is a session
//! ```

mod http;
mod kube;
pub mod kube_endpoint;
mod postgres;
mod ssh;
mod tcp;
pub(crate) mod web;

pub use http::HttpEngine;
pub use kube::KubeEngine;
pub(crate) use kube::status as kube_status;
pub use postgres::{PostgresEngine, Targets};
pub use ssh::SshEngine;
pub use tcp::TcpEngine;

use crate::gate::Authorized;
use crate::plan::RolePlan;
use crate::tunnel::SessionOpener;
use axum::http::HeaderMap;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sluice_config::{Config, ConfigError, Need, Resource};
use sluice_engine::{Lease, LeaseHandle};
use sluice_shared::ApiError;
use sluice_shared::api::ResourceKind;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Every kind with an engine, and the role settings its engine enforces: the one table the
/// config check, the gate and reloads consult.
const KINDS: &[(&str, &[Need])] = &[
    ("http", http::ENFORCES),
    ("kubernetes", kube::ENFORCES),
    ("postgres", postgres::ENFORCES),
    ("ssh", ssh::ENFORCES),
    ("tcp", tcp::ENFORCES),
];

/// A boxed future, for the trait's async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What every engine supplies to the tunnel endpoint.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Kind-specific facts for `sluice connect`'s preflight: the database of a PostgreSQL
    /// resource.
    fn database(&self, _resource: &Resource) -> Option<String> {
        None
    }

    /// What the resource check tells the caller beyond reachability: for PostgreSQL, whether
    /// the broker's own login is a superuser. Never fails: what cannot be found out is left
    /// out.
    fn inspect<'a>(&'a self, _resource: &'a Resource) -> BoxFuture<'a, Inspection> {
        Box::pin(std::future::ready(Inspection::default()))
    }

    /// Everything a tunnel needs before `101 Switching Protocols`: the engine's own request
    /// headers, the target credential, and (for protocols that cannot tell a session apart)
    /// the session record. An `Err` refuses the tunnel with that error.
    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>>;
}

/// What [`Engine::inspect`] found.
#[derive(Debug, Default)]
pub struct Inspection {
    /// The broker's login to the target is a database superuser.
    pub upstream_superuser: Option<bool>,
    /// The broker's SSH host key, for clients to pin.
    pub ssh_host_key: Option<String>,
    /// Notes for the user.
    pub notes: Vec<String>,
}

/// A tunnel request the gate authorized, for [`Engine::prepare`].
#[derive(Debug)]
pub struct Tunnel<'a> {
    /// The upgrade request's headers (the one-time secret of PostgreSQL tunnels).
    pub headers: &'a HeaderMap,
    /// Who, on what, under which grant.
    pub authz: &'a Authorized,
    /// Opens and closes the session's record; the engine decides when a session starts.
    pub opener: SessionOpener,
    /// The role's plan the gate built for this session, replaced when a reload changes it
    /// (the engine reads its kind's section and never looks the role up by name).
    pub plan: tokio::sync::watch::Receiver<Arc<RolePlan>>,
}

/// A prepared session, served once the stream is upgraded.
pub trait Session: Send {
    /// The session's own lease: the tunnel ends it when the grant, the broker, the grant's end
    /// time or the policy says so; a required recording that fails ends it too.
    fn lease(&self) -> Arc<LeaseHandle>;

    /// Serves the client's stream until either side closes or `lease` ends.
    fn serve(
        self: Box<Self>,
        stream: TokioIo<Upgraded>,
        lease: Lease,
    ) -> BoxFuture<'static, Served>;

    /// Serves requests handed over one by one by the broker's own HTTP endpoint (kubectl
    /// through `/v1/kube/RES`) until `requests` closes (the endpoint let the session go idle)
    /// or `lease` ends. Only engines that speak HTTP can; the others are never asked.
    fn serve_requests(
        self: Box<Self>,
        _requests: tokio::sync::mpsc::Receiver<Exchange>,
        _lease: Lease,
    ) -> BoxFuture<'static, Served> {
        let opener = self.abandon();
        Box::pin(async move {
            Served {
                opener,
                end: "error: this engine serves byte streams only".into(),
                bytes_up: 0,
                bytes_down: 0,
            }
        })
    }

    /// The record opener, when the upgrade failed and nothing was served.
    fn abandon(self: Box<Self>) -> SessionOpener;
}

/// One request of the broker's own HTTP endpoint for a session, and where its answer goes.
#[derive(Debug)]
pub struct Exchange {
    /// The request, its path as the target knows it (`/api/v1/pods`).
    pub request: hyper::Request<axum::body::Body>,
    /// The answer.
    pub reply: tokio::sync::oneshot::Sender<hyper::Response<web::ResponseBody>>,
}

/// How a session ended, with its record opener to write the end.
#[derive(Debug)]
pub struct Served {
    /// Writes the end, if the session started.
    pub opener: SessionOpener,
    /// The end as the session index keeps it (`closed`, `revoked: ...`, `error: ...`).
    pub end: String,
    /// Bytes from the client.
    pub bytes_up: u64,
    /// Bytes to the client.
    pub bytes_down: u64,
}

/// The refusal of an engine handed a resource of another kind (a registry mistake).
fn another_kind(engine: &str) -> ApiError {
    ApiError::new(
        sluice_shared::ErrorCode::Internal,
        format!("the {engine} engine was handed a resource of another kind"),
    )
}

/// The tunnel request's one-time secret header (the PostgreSQL password, the SSH client key).
fn secret_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(sluice_shared::tunnel::SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// The refusal when the broker cannot read a resource's `what` (its credential, its key);
/// logged with the resource, never with the value.
fn unreadable(resource: &str, what: &str) -> ApiError {
    tracing::warn!(resource = %resource, "cannot read the {what} of a resource");
    ApiError::new(
        sluice_shared::ErrorCode::Internal,
        format!(
            "the broker cannot read the {what} for '{resource}'; the operator should run \
             `sluiced check-config`"
        ),
    )
}

/// The engines of this broker, by kind.
#[derive(Debug)]
pub struct Registry {
    engines: HashMap<ResourceKind, Arc<dyn Engine>>,
}

impl Registry {
    /// Every engine, with what it needs from the broker.
    pub fn new(
        postgres: PostgresEngine,
        ssh: Arc<SshEngine>,
        kube: KubeEngine,
        http: HttpEngine,
    ) -> Self {
        let mut engines: HashMap<ResourceKind, Arc<dyn Engine>> = HashMap::new();
        engines.insert(ResourceKind::Http, Arc::new(http));
        engines.insert(ResourceKind::Kubernetes, Arc::new(kube));
        engines.insert(ResourceKind::Postgres, Arc::new(postgres));
        engines.insert(ResourceKind::Ssh, ssh);
        engines.insert(ResourceKind::Tcp, Arc::new(TcpEngine));
        Self { engines }
    }

    /// The engine of `kind`, if this broker has one.
    pub fn get(&self, kind: &ResourceKind) -> Option<&Arc<dyn Engine>> {
        self.engines.get(kind)
    }
}

/// Whether the engine serving `kind` enforces `need`. A kind without an engine enforces
/// nothing.
pub fn enforces(kind: &ResourceKind, need: Need) -> bool {
    KINDS
        .iter()
        .find(|(name, _)| *name == kind.as_str())
        .is_some_and(|(_, needs)| needs.contains(&need))
}

/// Every resource of a kind this broker has no engine for, and every place the configuration
/// gives a role on a resource whose engine cannot enforce it.
pub fn check(config: &Config) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = config
        .resources
        .iter()
        .filter(|r| !KINDS.iter().any(|(kind, _)| *kind == r.kind_ref().as_str()))
        .map(|r| ConfigError {
            location: r.location.clone(),
            key: format!("resources.{}.kind", r.name),
            message: format!(
                "this broker has no engine for resources of kind {} yet; remove the resource or \
                 use a broker that serves that kind",
                r.kind_ref()
            ),
        })
        .collect();
    errors.extend(config.unenforceable(enforces));
    errors
}
