//! The tunnel endpoint: authorize, answer `101 Switching Protocols`, hand the raw stream to the
//! resource's protocol engine, and log how the session ended.

use crate::api::{AppState, Failure};
use crate::gate::Authorized;
use crate::sessions::SessionLog;
use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use sluice_config::{Config, ResourceSpec, TlsMode};
use sluice_engine::{Lease, LeaseHandle, RelayEnd, RelayOutcome};
use sluice_engine_postgres::{SessionParams, Target, TargetTls};
use sluice_shared::grants::Requester;
use sluice_shared::sessions::SessionInfo;
use sluice_shared::tunnel::{CLIENT_ADDR_HEADER, PROTOCOL, RESOURCE_HEADER, SECRET_HEADER};
use sluice_shared::{ApiError, ErrorCode, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, info, warn};

/// The shortest one-time secret the broker accepts: the CLI sends 43 characters (256 bits).
const MIN_SECRET_LEN: usize = 32;

/// Per-resource material loaded once at start-up (TLS roots for targets).
#[derive(Debug, Default)]
pub struct Targets {
    tls: HashMap<String, TargetTls>,
}

impl Targets {
    /// Loads the target TLS settings of every postgres resource.
    pub fn load(config: &Config) -> Result<Self> {
        let mut tls = HashMap::new();
        for resource in &config.resources {
            if let ResourceSpec::Postgres(pg) = &resource.spec {
                let roots = match &pg.tls.ca {
                    Some(ca) => Some(crate::tls::root_store(&ca.value).with_context(|| {
                        format!("{}: resources.{}.tls.ca", ca.location, resource.name)
                    })?),
                    None => None,
                };
                let setting = match pg.tls.mode {
                    TlsMode::Disable => TargetTls::Disable,
                    TlsMode::Require => TargetTls::Require { roots },
                    TlsMode::VerifyFull => TargetTls::VerifyFull {
                        roots: roots.context("tls.mode verify-full needs tls.ca")?,
                        server_name: pg.server_name().to_string(),
                    },
                };
                tls.insert(resource.name.clone(), setting);
            }
        }
        Ok(Self { tls })
    }
}

/// The open tunnels: at most `max` at once, each holding a slot until its session has written
/// its end; shutdown waits for every slot to come back.
#[derive(Debug)]
pub struct TunnelSlots {
    slots: Arc<Semaphore>,
    max: u32,
}

impl TunnelSlots {
    /// Room for `max` tunnels (`limits.max_tunnels`).
    pub fn new(max: u32) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A slot for a new tunnel, or the refusal the client reads when all are taken.
    fn try_open(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            warn!(
                max = self.max,
                "tunnel refused: every tunnel slot is in use"
            );
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "the broker already holds its limit of {} open tunnels (limits.max_tunnels); \
                     try again when a session ends",
                    self.max
                ),
            )
        })
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.max as usize - self.slots.available_permits()
    }

    /// Resolves when every tunnel has ended and written its end.
    pub async fn drained(&self) {
        // Never closed, so this only waits.
        let _ = self.slots.acquire_many(self.max).await;
    }
}

/// `GET /v1/tunnel` with `Upgrade: sluice-tunnel/1`.
pub async fn open(State(app): State<AppState>, mut req: Request) -> Result<Response, Failure> {
    let headers = req.headers();
    let upgrade_ok = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL));
    if !upgrade_ok {
        return Err(bad_request(format!("a tunnel needs `Upgrade: {PROTOCOL}`")));
    }
    let resource = headers
        .get(RESOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_request(format!("a tunnel needs a `{RESOURCE_HEADER}` header")))?
        .to_string();
    let client_addr = headers
        .get(CLIENT_ADDR_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let authz = match app.gate.authorize(headers, &resource).await {
        Ok(authz) => authz,
        Err(e) => {
            // Who asked is unproven when the token is the problem, so only what was asked for.
            info!(target: "audit", event = "tunnel.refused.v1", resource = %resource,
                client = %client_addr, code = %e.code, reason = %e.message);
            return Err(e.into());
        }
    };
    // Held by the session task for the tunnel's whole life, so the limit bounds open tunnels
    // and shutdown can wait for every one to write its end.
    let permit = app.tunnels.try_open().map_err(Failure)?;
    let session_id = format!("ses_{}", crate::tokens::random_id());
    let role = app.gate.config().policy.role(authz.role());
    let record = role.map(|r| r.record).unwrap_or_default();
    let record_rows = role.map_or(0, |r| r.record_rows);
    let who = authz.identity();
    let info = SessionInfo {
        id: session_id.clone(),
        subject: who.subject.clone(),
        auth_method: who.auth_method.clone(),
        ci: who.ci.clone(),
        resource: resource.clone(),
        kind: authz.resource().kind().as_str().to_owned(),
        role: authz.role().to_owned(),
        grant: authz.grant_id().to_owned(),
        client: client_addr.clone(),
        started_at: 0,
        ended_at: None,
        bytes_up: 0,
        bytes_down: 0,
        statements: 0,
        end: None,
        recording: String::new(),
    };
    let mut engine = match &authz.resource().spec {
        ResourceSpec::Tcp(tcp) => Engine::Tcp {
            address: tcp.address.clone(),
        },
        ResourceSpec::Postgres(pg) => {
            let secret = headers
                .get(SECRET_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|s| s.len() >= MIN_SECRET_LEN)
                .ok_or_else(|| {
                    bad_request(format!(
                        "a postgres tunnel needs a `{SECRET_HEADER}` of at least {MIN_SECRET_LEN} characters"
                    ))
                })?;
            let password = pg.password.value.resolve().map_err(|e| {
                warn!(resource = %resource, error = %e, "cannot read the target credential");
                Failure(ApiError::new(
                    ErrorCode::Internal,
                    format!("the broker cannot read the credential for '{resource}'; the operator should run `sluiced check-config`"),
                ))
            })?;
            let tls = app
                .targets
                .tls
                .get(&resource)
                .cloned()
                .unwrap_or(TargetTls::Disable);
            let who = authz.identity();
            let session = crate::holds::Session {
                requester: Requester {
                    subject: who.subject.clone(),
                    groups: who.groups.clone(),
                    auth_method: who.auth_method.clone(),
                    provider: who.provider.clone(),
                    ci: who.ci.clone(),
                },
                resource: resource.clone(),
                role: authz.role().to_string(),
                grant: authz.grant_id().to_string(),
                approvers: Vec::new(),
                timeout: std::time::Duration::ZERO,
            };
            let columns = if app.enforcer.needs_catalog(authz.role()) {
                let target = Target {
                    address: pg.address.clone(),
                    database: pg.database.clone(),
                    user: pg.user.clone(),
                    password: password.clone(),
                    tls: tls.clone(),
                    settings: Vec::new(),
                };
                // Fail closed: without it an alias would slip past the column rules.
                match app.enforcer.catalog(&resource, &target).await {
                    Ok(columns) => Some(columns),
                    Err(e) => {
                        warn!(resource = %resource, error = %e, "cannot read the catalog for masking");
                        return Err(Failure(ApiError::new(
                            ErrorCode::TargetUnreachable,
                            format!(
                                "the broker cannot read the column names of '{resource}' that masking needs: {e}"
                            ),
                        )));
                    }
                }
            } else {
                None
            };
            let enforced = app
                .enforcer
                .for_session(authz.role(), session, columns)
                .ok_or_else(|| {
                    Failure(ApiError::new(
                        ErrorCode::GrantInactive,
                        format!(
                            "role '{}' is not in the policy the broker runs; request a new grant",
                            authz.role()
                        ),
                    ))
                })?;
            Engine::Postgres(
                Box::new(SessionParams {
                    subject: who.subject.clone(),
                    tunnel_secret: Secret::new(secret.to_string()),
                    target: Target {
                        address: pg.address.clone(),
                        database: pg.database.clone(),
                        user: pg.user.clone(),
                        password,
                        tls,
                        settings: enforced.settings,
                    },
                    enforcement: enforced.enforcement,
                }),
                enforced.counts,
            )
        }
    };

    let masker = match &engine {
        Engine::Postgres(params, _) => params.enforcement.masker.clone(),
        Engine::Tcp { .. } => None,
    };
    let log = app
        .sessions
        .start(info, record, record_rows, masker)
        .await
        .map_err(|e| Failure(ApiError::new(ErrorCode::Unavailable, e.to_string())))?;
    if let Engine::Postgres(params, _) = &mut engine {
        params.enforcement.journal = log.journal();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let span = tracing::info_span!(
        "session",
        id = %session_id,
        subject = %authz.identity().subject,
        resource = %resource,
        grant = %authz.grant_id(),
        role = %authz.role(),
        client = %client_addr,
    );
    tokio::spawn(
        async move {
            let _permit = permit;
            match on_upgrade.await {
                Ok(upgraded) => run(TokioIo::new(upgraded), engine, authz, log, &app).await,
                Err(e) => {
                    warn!(error = %e, "the tunnel upgrade failed");
                    log.finish(&format!("error: the tunnel upgrade failed: {e}"), 0, 0)
                        .await;
                }
            }
        }
        .instrument(span),
    );

    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    response
        .headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
    Ok(response)
}

fn bad_request(message: String) -> Failure {
    Failure(ApiError::new(ErrorCode::BadRequest, message))
}

/// Which engine serves a tunnel, with what it needs.
#[derive(Debug)]
enum Engine {
    Tcp {
        address: String,
    },
    Postgres(
        Box<SessionParams>,
        std::sync::Arc<std::sync::Mutex<sluice_mask::MaskCounts>>,
    ),
}

/// Runs the engine under a lease of its own that ends when the grant ends, when the broker
/// shuts down, or when the grant's end time passes, whichever comes first: a tunnel never
/// outlives its grant even if a timer or a store write failed.
async fn run<S>(mut stream: S, engine: Engine, authz: Authorized, log: SessionLog, app: &AppState)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    info!(kind = %authz.resource().kind().as_str(), "session started");
    let session_lease = LeaseHandle::new();
    let lease = session_lease.lease();
    let grant = authz.into_grant();
    // A task of its own, so the relay's wake-ups do not poll the bounds too.
    let bounds = bound(
        grant.lease,
        app.shutdown.lease(),
        grant.expires_at,
        log.required_failure(),
    );
    let watcher = tokio::spawn(async move { session_lease.end(bounds.await) });
    let session = async {
        match engine {
            Engine::Tcp { address } => {
                match sluice_engine::tcp::serve(&mut stream, &address, lease).await {
                    Ok(outcome) => log_end(&outcome),
                    Err(e) => {
                        warn!(error = %e, "session refused: target unreachable");
                        (format!("error: target unreachable: {e}"), 0, 0)
                    }
                }
            }
            Engine::Postgres(params, counts) => {
                let end =
                    match sluice_engine_postgres::serve(&mut stream, *params, &app.cancels, lease)
                        .await
                    {
                        Ok(summary) => match summary.relay {
                            Some(outcome) => log_end(&outcome),
                            None => {
                                info!("cancel request forwarded");
                                ("cancel request".to_owned(), 0, 0)
                            }
                        },
                        Err(e) => {
                            warn!(error = %e, "session ended with an error");
                            (format!("error: {e}"), 0, 0)
                        }
                    };
                // Rule names and counts only, never a value.
                let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).take();
                for (rule, count) in counts.iter() {
                    info!(target: "audit", event = "masking.applied.v1", session = %log.id(), rule, count);
                }
                end
            }
        }
    };
    let (end, bytes_up, bytes_down) = session.await;
    watcher.abort();
    log.finish(&end, bytes_up, bytes_down).await;
}

/// Resolves with the reason the first of the grant's lease, the broker's lease, the grant's
/// end time and a required recording's failure ends.
async fn bound(
    mut grant: Lease,
    mut broker: Lease,
    expires_at: u64,
    recording: impl std::future::Future<Output = String>,
) -> String {
    let end = UNIX_EPOCH + Duration::from_secs(expires_at);
    let left = end.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::select! {
        reason = grant.revoked() => reason,
        reason = broker.revoked() => reason,
        reason = recording => reason,
        () = tokio::time::sleep(left) => "the grant's time ran out".to_string(),
    }
}

/// Logs how a relay ended; returns the end as the session index keeps it, and the bytes.
fn log_end(outcome: &RelayOutcome) -> (String, u64, u64) {
    let end = match &outcome.end {
        RelayEnd::Closed => "closed".to_string(),
        RelayEnd::Revoked(reason) => format!("revoked: {reason}"),
        RelayEnd::Error(e) => format!("error: {e}"),
    };
    info!(
        bytes_up = outcome.bytes_up,
        bytes_down = outcome.bytes_down,
        end = %end,
        "session ended"
    );
    (end, outcome.bytes_up, outcome.bytes_down)
}
