//! The broker's HTTPS API: health, version, whoami, login, resource check, grants, the audit
//! trail and the tunnel endpoint.

use crate::gate::Gate;
use crate::grants::Grants;
use crate::login::Exchanger;
use crate::tokens::Revocations;
use crate::tunnel;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_engine::LeaseHandle;
use sluice_shared::api::{
    AuthConfig, ExchangeRequest, ExchangeResponse, Health, ResourceCheck, ResourceList,
    VersionInfo, WhoAmI,
};
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Token and policy checks.
    pub gate: Gate,
    /// The sessions of the broker's own Kubernetes endpoint, by grant.
    pub kube_links: Arc<crate::engines::kube_endpoint::KubeLinks>,
    /// Ended when the broker shuts down; every tunnel's lease derives from it.
    pub shutdown: Arc<LeaseHandle>,
    /// Open tunnels, bounded by `limits.max_tunnels`.
    pub tunnels: Arc<tunnel::TunnelSlots>,
    /// Target TLS roots and other per-resource material loaded at start-up.
    /// The protocol engines, by resource kind.
    pub engines: Arc<crate::engines::Registry>,
    /// Verifies OIDC and workload tokens and mints session tokens.
    pub exchanger: Arc<Exchanger>,
    /// Session tokens revoked by logout.
    pub revocations: Arc<Revocations>,
    /// Grants and approvals.
    pub grants: Arc<Grants>,
    /// Statements held for approval in live sessions.
    pub holds: Arc<crate::holds::Holds>,
    /// The audit trail, for auditors.
    pub audit: Arc<crate::audit_api::AuditAccess>,
    /// Session recordings and the session index.
    pub sessions: crate::sessions::Sessions,
    /// `GET /metrics`, when the configuration turns it on.
    pub metrics: Option<crate::metrics::Metrics>,
    /// Whether this broker hears the others sharing its store.
    pub fanout: Arc<crate::fanout::FanoutStatus>,
}

/// An [`ApiError`] as an HTTP response with the code's status and a JSON body.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

/// The router for every endpoint.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/v1/health", get(health))
        .route("/v1/version", get(version))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/v1/kube/{*path}",
            axum::routing::any(crate::engines::kube_endpoint::handle),
        )
        .route("/v1/whoami", get(whoami))
        .route("/v1/auth/config", get(auth_config))
        .route("/v1/auth/token", post(exchange))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/resources", get(list_resources))
        .route("/v1/resources/{name}/check", get(check_resource))
        .route(sluice_shared::tunnel::PATH, get(tunnel::open))
        .merge(crate::grants_api::routes())
        .merge(crate::agents_api::routes())
        .merge(crate::audit_api::routes())
        .merge(crate::sessions_api::routes())
        .fallback(not_found)
        .with_state(state)
}

/// What the broker needs to serve tunnels, checked now: the store answers, the recordings can
/// be written and (with a shared store) the other brokers' changes are heard. 503 when one
/// fails, so a load balancer sends no one to a broker that would refuse every tunnel or miss
/// another broker's revocations for up to the re-check interval.
async fn health(State(app): State<AppState>) -> Response {
    let (store, recordings) = app.sessions.check().await;
    let mut checks = std::collections::BTreeMap::new();
    let mut ok = true;
    let notifications = app.fanout.check().map(|result| ("notifications", result));
    for (name, result) in [("store", store), ("recordings", recordings)]
        .into_iter()
        .chain(notifications)
    {
        if let Err(why) = &result {
            tracing::warn!(check = name, error = %why, "health check failed");
            ok = false;
        }
        checks.insert(name.to_owned(), result.err().unwrap_or_else(|| "ok".into()));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ok { "ok" } else { "failing" }.into(),
        checks,
    };
    (status, Json(health)).into_response()
}

/// The broker's public key, for services that verify its identity assertions.
async fn jwks(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.gate.tokens().jwks())
}

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "sluiced".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        tunnel_protocol: sluice_shared::tunnel::PROTOCOL.into(),
    })
}

async fn whoami(State(app): State<AppState>, headers: HeaderMap) -> Result<Json<WhoAmI>, Failure> {
    let id = app.gate.identify(&headers)?;
    Ok(Json(WhoAmI {
        subject: id.subject,
        groups: id.groups,
        auth_method: id.auth_method,
        expires_at: id.expires_at,
        token_id: id.token_id,
        provider: id.provider,
        ci: id.ci,
    }))
}

async fn auth_config(State(app): State<AppState>) -> Json<AuthConfig> {
    Json(app.exchanger.auth_config())
}

/// Exchanges an OIDC ID token or a workload token for a session token.
async fn exchange(
    State(app): State<AppState>,
    body: Result<Json<ExchangeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ExchangeResponse>, Failure> {
    let Json(req) = body.map_err(|e| {
        Failure(ApiError::new(
            ErrorCode::BadRequest,
            format!("expected {{\"kind\": \"oidc\"|\"workload\", \"token\": \"...\"}}: {e}"),
        ))
    })?;
    Ok(Json(app.exchanger.exchange(&req).await?))
}

/// Revokes the presented session token, in the store first so the logout survives a restart.
///
/// Fails closed: if the store cannot record it, the answer is 503 `unavailable` and the token is
/// not revoked anywhere, so nobody believes in a logout that a restart would undo, and the
/// caller can retry with the same token.
async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Result<StatusCode, Failure> {
    let id = app.gate.identify(&headers)?;
    if let Err(e) = app
        .revocations
        .revoke(&id.token_id, &id.subject, id.expires_at)
        .await
    {
        tracing::warn!(subject = %id.subject, token_id = %id.token_id, error = %e,
            "cannot record a logout in the store");
        return Err(Failure(ApiError::new(
            ErrorCode::Unavailable,
            "the broker cannot record the logout in its store, so the session token was not \
             revoked and stays valid until it expires; try again shortly",
        )));
    }
    tracing::info!(target: "audit", event = "auth.logout.v1", subject = %id.subject, token_id = %id.token_id);
    Ok(StatusCode::NO_CONTENT)
}

/// Authorizes the caller for the resource and checks the target answers a TCP connect, so
/// `sluice connect` can fail early with the right message instead of at the first psql.
async fn check_resource(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ResourceCheck>, Failure> {
    let (identity, resource) = app.gate.may_request(&headers, &name)?;
    if let Err(e) = sluice_engine::tcp::connect(resource.address()).await {
        return Err(ApiError::new(
            ErrorCode::TargetUnreachable,
            format!("the target of '{name}' is unreachable: {e}"),
        )
        .into());
    }
    let engine = app.engines.get(resource.kind_ref());
    let inspection = match engine {
        Some(engine) => engine.inspect(&resource).await,
        None => Default::default(),
    };
    Ok(Json(ResourceCheck {
        name: resource.name.clone(),
        kind: resource.kind(),
        database: engine.and_then(|engine| engine.database(&resource)),
        subject: identity.subject,
        upstream_superuser: inspection.upstream_superuser,
        ssh_host_key: inspection.ssh_host_key,
        notes: inspection.notes,
    }))
}

/// The resources the caller may request a role on, with those roles.
async fn list_resources(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ResourceList>, Failure> {
    let id = app.gate.identify(&headers)?;
    Ok(Json(app.gate.requestable(&id)))
}

async fn not_found() -> Failure {
    Failure(ApiError::new(ErrorCode::BadRequest, "no such endpoint"))
}
