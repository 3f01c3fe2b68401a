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
use sluice_engine_postgres::hooks::Masker;
use sluice_engine_postgres::{
    SessionKind, SessionParams, SessionStart, SessionSummary, StartFuture, Started, Target,
    TargetTls,
};
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
    let config = app.gate.config();
    let role = config.policy.role(authz.role());
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
    let mut opener = SessionOpener {
        app: app.clone(),
        info: Some(info),
        record: role.map(|r| r.record).unwrap_or_default(),
        record_rows: role.map_or(0, |r| r.record_rows),
        lease: Arc::new(LeaseHandle::new()),
        log: None,
        failure_watch: None,
    };
    let engine = match &authz.resource().spec {
        ResourceSpec::Tcp(tcp) => {
            // No protocol to tell a cancel from a session: every TCP tunnel is a session, and
            // a refusal can still be an HTTP answer the CLI prints.
            opener
                .open(None)
                .await
                .map_err(|why| Failure(ApiError::new(ErrorCode::Unavailable, why)))?;
            Engine::Tcp {
                address: tcp.address.clone(),
                opener: Box::new(opener),
            }
        }
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
                .borrow()
                .tls
                .get(&resource)
                .cloned()
                .unwrap_or(TargetTls::Disable);
            let holds = crate::holds::Session {
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
            let target = Target {
                address: pg.address.clone(),
                database: pg.database.clone(),
                user: pg.user.clone(),
                password,
                tls,
                settings: Vec::new(),
            };
            Engine::Postgres(
                Box::new(SessionParams {
                    subject: who.subject.clone(),
                    tunnel_secret: Secret::new(secret.to_string()),
                    target: target.clone(),
                    enforcement: Default::default(),
                }),
                Box::new(PostgresStart {
                    opener,
                    resource: resource.clone(),
                    role: authz.role().to_owned(),
                    holds,
                    target,
                    counts: None,
                }),
            )
        }
    };

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
                Ok(upgraded) => run(TokioIo::new(upgraded), engine, authz, &app).await,
                Err(e) => {
                    warn!(error = %e, "the tunnel upgrade failed");
                    if let Engine::Tcp { opener, .. } = engine {
                        opener
                            .finish(&format!("error: the tunnel upgrade failed: {e}"), 0, 0)
                            .await;
                    }
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
enum Engine {
    Tcp {
        address: String,
        opener: Box<SessionOpener>,
    },
    Postgres(Box<SessionParams>, Box<PostgresStart>),
}

/// Opens a session's record (index row, recording, audit) once the tunnel is known to carry a
/// session, and closes it at the end. Its lease is the session's: a required recording that
/// fails ends it.
struct SessionOpener {
    app: AppState,
    /// Taken when the record opens.
    info: Option<SessionInfo>,
    record: sluice_config::RecordMode,
    record_rows: u32,
    /// The session's own lease: the grant, the broker, the grant's end and the recording end it.
    lease: Arc<LeaseHandle>,
    /// Set once the session has started.
    log: Option<SessionLog>,
    /// Ends the lease when a required recording fails; aborted at the end.
    failure_watch: Option<tokio::task::JoinHandle<()>>,
}

impl SessionOpener {
    async fn open(&mut self, masker: Option<Arc<dyn Masker>>) -> Result<(), String> {
        let Some(info) = self.info.take() else {
            return Err("the session was already started".into());
        };
        let log = self
            .app
            .sessions
            .start(info, self.record, self.record_rows, masker)
            .await
            .map_err(|e| e.to_string())?;
        let failure = log.required_failure();
        let lease = Arc::clone(&self.lease);
        self.failure_watch = Some(tokio::spawn(async move { lease.end(failure.await) }));
        self.log = Some(log);
        Ok(())
    }

    /// Writes the session's end, if it started.
    async fn finish(mut self, end: &str, bytes_up: u64, bytes_down: u64) {
        if let Some(watch) = self.failure_watch.take() {
            watch.abort();
        }
        if let Some(log) = self.log.take() {
            log.finish(end, bytes_up, bytes_down).await;
        }
    }
}

/// The PostgreSQL session's start: the catalog masking needs, the role's enforcement and the
/// record, only once the client's first message is a StartupMessage (a CancelRequest is not a
/// session).
struct PostgresStart {
    opener: SessionOpener,
    resource: String,
    role: String,
    holds: crate::holds::Session,
    /// The target, for the broker's own catalog login.
    target: Target,
    /// How many values each masking rule rewrote, once started.
    counts: Option<Arc<std::sync::Mutex<sluice_mask::MaskCounts>>>,
}

impl SessionStart for PostgresStart {
    fn start(&mut self) -> StartFuture<'_> {
        Box::pin(async move {
            let enforcer = Arc::clone(&self.opener.app.enforcer.borrow());
            let columns = if enforcer.needs_catalog(&self.role) {
                // Fail closed: without it an alias would slip past the column rules.
                match enforcer.catalog(&self.resource, &self.target).await {
                    Ok(columns) => Some(columns),
                    Err(e) => {
                        warn!(resource = %self.resource, error = %e, "cannot read the catalog for masking");
                        return Err(format!(
                            "the broker cannot read the column names of '{}' that masking \
                             needs: {e}",
                            self.resource
                        ));
                    }
                }
            } else {
                None
            };
            let mut enforced = enforcer
                .for_session(&self.role, self.holds.clone(), columns)
                .ok_or_else(|| {
                    format!(
                        "role '{}' is not in the policy the broker runs; request a new grant",
                        self.role
                    )
                })?;
            self.opener
                .open(enforced.enforcement.masker.clone())
                .await?;
            enforced.enforcement.journal = self.opener.log.as_ref().and_then(SessionLog::journal);
            self.counts = Some(enforced.counts);
            info!(kind = "postgres", "session started");
            Ok(Some(Started {
                enforcement: enforced.enforcement,
                settings: enforced.settings,
            }))
        })
    }
}

/// Runs the engine under a lease of its own that ends when the grant ends, when the broker
/// shuts down, when the grant's end time passes, or when a required recording fails, whichever
/// comes first: a tunnel never outlives its grant even if a timer or a store write failed.
async fn run<S>(mut stream: S, engine: Engine, authz: Authorized, app: &AppState)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let identity = authz.identity().clone();
    let subject = identity.subject.clone();
    let resource = authz.resource().name.clone();
    let grant_id = authz.grant_id().to_owned();
    let grant = authz.into_grant();
    let policy = watch_policy(
        app.gate.live().subscribe(),
        app.gate.config(),
        identity,
        resource.clone(),
        grant_id.clone(),
        grant.role.clone(),
    );
    let session_lease = match &engine {
        Engine::Tcp { opener, .. } => Arc::clone(&opener.lease),
        Engine::Postgres(_, start) => Arc::clone(&start.opener.lease),
    };
    let lease = session_lease.lease();
    // A task of its own, so the relay's wake-ups do not poll the bounds too.
    let bounds = bound(grant.lease, app.shutdown.lease(), grant.expires_at, policy);
    let watcher = tokio::spawn(async move { session_lease.end(bounds.await) });
    let (opener, (end, bytes_up, bytes_down)) = match engine {
        Engine::Tcp { address, opener } => {
            info!(kind = "tcp", "session started");
            let end = match sluice_engine::tcp::serve(&mut stream, &address, lease).await {
                Ok(outcome) => log_end(&outcome),
                Err(e) => {
                    warn!(error = %e, "session refused: target unreachable");
                    (format!("error: target unreachable: {e}"), 0, 0)
                }
            };
            (*opener, end)
        }
        Engine::Postgres(params, mut start) => {
            let served = sluice_engine_postgres::serve(
                &mut stream,
                *params,
                &app.cancels,
                lease,
                &mut *start,
            )
            .await;
            let end = match served {
                Ok(SessionSummary {
                    kind: SessionKind::Cancel { forwarded },
                    ..
                }) => {
                    // Ctrl-C in psql: a cancel, not a session (no record, no recording).
                    info!(target: "audit", event = "cancel.requested.v1", subject = %subject,
                        resource = %resource, grant = %grant_id, forwarded);
                    ("cancel request".to_owned(), 0, 0)
                }
                Ok(summary) => summary
                    .relay
                    .as_ref()
                    .map_or_else(|| ("closed".to_owned(), 0, 0), log_end),
                Err(e) => {
                    warn!(error = %e, "session ended with an error");
                    (format!("error: {e}"), 0, 0)
                }
            };
            if let (Some(log), Some(counts)) = (&start.opener.log, &start.counts) {
                // Rule names and counts only, never a value.
                let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).take();
                for (rule, count) in counts.iter() {
                    info!(target: "audit", event = "masking.applied.v1", session = %log.id(), rule, count);
                }
            }
            (start.opener, end)
        }
    };
    watcher.abort();
    opener.finish(&end, bytes_up, bytes_down).await;
}

/// Resolves when a reload puts a policy in force that would not open this session now: the
/// role, rule or resource is gone, the role is given where it cannot be enforced, or the role's
/// guardrails or masking changed (the session's guard, masker and login settings were built
/// from the old ones; it ends rather than run under rules nobody wrote any more).
async fn watch_policy(
    mut changes: tokio::sync::watch::Receiver<Arc<Config>>,
    started: Arc<Config>,
    identity: crate::gate::Identity,
    resource: String,
    grant_id: String,
    role: String,
) -> String {
    loop {
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
        let now = Arc::clone(&changes.borrow_and_update());
        if let Err(e) =
            crate::gate::Gate::still_allowed_by(&now, &identity, &resource, &grant_id, &role)
        {
            return format!("the broker's policy changed: {}", e.message);
        }
        if enforcement_of(&started, &role) != enforcement_of(&now, &role) {
            return format!(
                "the broker's policy changed: role '{role}' now has other guardrails or \
                 masking; connect again to continue under them"
            );
        }
    }
}

/// What a session of `role` was built from: its guardrails and masking, as configured.
fn enforcement_of<'c>(
    config: &'c Config,
    role: &str,
) -> Option<(
    Option<&'c sluice_config::GuardrailsRef>,
    Option<&'c sluice_config::GuardrailProfile>,
    Option<&'c sluice_config::MaskingProfile>,
)> {
    let role = config.policy.role(role)?;
    let guard_profile = match &role.guardrails {
        Some(sluice_config::GuardrailsRef::Profile(name)) => config.policy.guardrail_profile(name),
        _ => None,
    };
    let masking = role
        .masking
        .as_deref()
        .and_then(|name| config.policy.masking_profile(name));
    Some((role.guardrails.as_ref(), guard_profile, masking))
}

/// Resolves with the reason the first of the grant's lease, the broker's lease, the grant's
/// end time and a policy change that no longer allows the session ends.
async fn bound(
    mut grant: Lease,
    mut broker: Lease,
    expires_at: u64,
    policy: impl std::future::Future<Output = String>,
) -> String {
    let end = UNIX_EPOCH + Duration::from_secs(expires_at);
    let left = end.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::select! {
        reason = grant.revoked() => reason,
        reason = broker.revoked() => reason,
        reason = policy => reason,
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
