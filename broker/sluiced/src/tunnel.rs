//! The tunnel endpoint: authorize, answer `101 Switching Protocols`, hand the raw stream to the
//! resource's protocol engine, and log how the session ended.

use crate::api::{AppState, Failure};
use crate::engines::{Session, Tunnel};
use crate::gate::Authorized;
use crate::live::LiveConfig;
use crate::plan::RolePlan;
use crate::sessions::SessionLog;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use sluice_engine::{Lease, LeaseHandle, RelayEnd, RelayOutcome};
use sluice_engine_postgres::hooks::Masker;
use sluice_shared::sessions::SessionInfo;
use sluice_shared::tunnel::{CLIENT_ADDR_HEADER, PROTOCOL, RESOURCE_HEADER};
use sluice_shared::{ApiError, ErrorCode};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{Instrument, info, warn};

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
    let Started {
        id: session_id,
        session,
        authz,
        permit,
        plan: plan_tx,
    } = start(&app, headers, &resource, &client_addr).await?;
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
                Ok(upgraded) => {
                    run(
                        Transport::Stream(TokioIo::new(upgraded)),
                        session,
                        authz,
                        plan_tx,
                        &app,
                    )
                    .await;
                }
                Err(e) => {
                    warn!(error = %e, "the tunnel upgrade failed");
                    session
                        .abandon()
                        .finish(&format!("error: the tunnel upgrade failed: {e}"), 0, 0)
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

/// A session the gate allowed and the engine prepared, ready to be served.
pub struct Started {
    /// The session's id.
    pub id: String,
    /// The engine's session.
    pub session: Box<dyn Session>,
    /// Who, on what, under which grant.
    pub authz: Authorized,
    /// The session's tunnel slot, held until it has written its end.
    pub permit: OwnedSemaphorePermit,
    /// The session's plan, replaced by reloads while it runs.
    pub plan: watch::Sender<Arc<RolePlan>>,
}

/// Authorizes a session of `resource` for the caller `headers` name (token, grant, one-time
/// secret), takes a tunnel slot and has the resource's engine prepare it.
///
/// It runs on a task of its own: the engine opens the session's record while preparing it, and
/// a client that hangs up meanwhile drops the request's future; the task still finishes, and
/// what it started, dropped unserved, writes its end ([`SessionOpener`]'s drop).
pub async fn start(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    resource: &str,
    client_addr: &str,
) -> Result<Started, Failure> {
    let (app, headers) = (app.clone(), headers.clone());
    let (resource, client_addr) = (resource.to_owned(), client_addr.to_owned());
    let started = tokio::spawn(async move { prepare(&app, &headers, resource, client_addr).await })
        .await
        .map_err(|e| {
            Failure(ApiError::new(
                ErrorCode::Internal,
                format!("preparing the session failed: {e}"),
            ))
        })?;
    match &started {
        Ok(started) => crate::metrics::tunnel_opened(started.authz.resource().kind().as_str()),
        Err(Failure(e)) => crate::metrics::tunnel_refused(e.code.as_str()),
    }
    started
}

/// [`start`]'s work: the gate, a tunnel slot, the engine's session.
async fn prepare(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    resource: String,
    client_addr: String,
) -> Result<Started, Failure> {
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
    let plan = Arc::clone(authz.plan());
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
    let opener = SessionOpener {
        app: app.clone(),
        info: Some(info),
        record: plan.record,
        record_rows: plan.record_rows,
        lease: Arc::new(LeaseHandle::new()),
        log: None,
        failure_watch: None,
    };
    let kind = authz.resource().kind();
    let engine = app.engines.get(&kind).cloned().ok_or_else(|| {
        Failure(ApiError::new(
            ErrorCode::Internal,
            format!("this broker has no engine for resources of kind {kind}"),
        ))
    })?;
    // The session's plan as reloads replace it; the engine reads it, `run` writes it.
    let (plan_tx, plan_rx) = tokio::sync::watch::channel(plan);
    let session = engine
        .prepare(Tunnel {
            headers,
            authz: &authz,
            opener,
            plan: plan_rx,
        })
        .await
        .map_err(Failure)?;

    Ok(Started {
        id: session_id,
        session,
        authz,
        permit,
        plan: plan_tx,
    })
}

fn bad_request(message: String) -> Failure {
    Failure(ApiError::new(ErrorCode::BadRequest, message))
}

/// Opens a session's record (index row, recording, audit) once the tunnel is known to carry a
/// session, and closes it at the end. Its lease is the session's: a required recording that
/// fails ends it.
pub struct SessionOpener {
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

impl std::fmt::Debug for SessionOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOpener")
            .field("started", &self.log.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionOpener {
    /// Opens the session's record (with a statement journal when the engine carries SQL);
    /// `Err` says why the session may not start.
    pub async fn open(
        &mut self,
        masker: Option<Arc<dyn Masker>>,
        statements: bool,
    ) -> Result<(), String> {
        let Some(info) = self.info.take() else {
            return Err("the session was already started".into());
        };
        let log = self
            .app
            .sessions
            .start(info, self.record, self.record_rows, masker, statements)
            .await
            .map_err(|e| e.to_string())?;
        let failure = log.required_failure();
        let lease = Arc::clone(&self.lease);
        self.failure_watch = Some(tokio::spawn(async move { lease.end(failure.await) }));
        self.log = Some(log);
        Ok(())
    }

    /// The session's own lease.
    pub fn lease(&self) -> Arc<LeaseHandle> {
        Arc::clone(&self.lease)
    }

    /// The statement journal of a started, recorded session.
    pub fn journal(&self) -> Option<Arc<dyn sluice_engine_postgres::hooks::Journal>> {
        self.log.as_ref().and_then(SessionLog::journal)
    }

    /// A handle on the recording of a started, recorded session.
    pub fn recording(&self) -> Option<sluice_recording::SessionRecording> {
        self.log.as_ref().and_then(SessionLog::recording)
    }

    /// Writes a session-level event to the recording of a started session.
    pub fn record(&self, event: sluice_shared::recording::SessionEvent) {
        if let Some(log) = &self.log {
            log.record(event);
        }
    }

    /// The session's id, once it started.
    pub fn session_id(&self) -> Option<&str> {
        self.log.as_ref().map(SessionLog::id)
    }

    /// Writes the session's end, if it started.
    pub async fn finish(mut self, end: &str, bytes_up: u64, bytes_down: u64) {
        if let Some(watch) = self.failure_watch.take() {
            watch.abort();
        }
        if let Some(log) = self.log.take() {
            log.finish(end, bytes_up, bytes_down).await;
        }
    }
}

/// A session whose record opened but that is dropped without [`SessionOpener::finish`] (the
/// client hung up while the tunnel request was still being answered, so the request's future
/// was dropped after the engine prepared the session) still gets its end written, or it would
/// stay open in the session index for good.
impl Drop for SessionOpener {
    fn drop(&mut self) {
        if let Some(watch) = self.failure_watch.take() {
            watch.abort();
        }
        let Some(log) = self.log.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(session = %log.id(), "a session was dropped outside the runtime; its end is not recorded");
            return;
        };
        runtime.spawn(async move {
            log.finish(
                "closed: the tunnel ended before the session was served",
                0,
                0,
            )
            .await;
        });
    }
}

/// How a session's client reaches it: a tunnel's byte stream, or requests the broker's own
/// endpoint hands over.
pub enum Transport {
    /// The upgraded tunnel.
    Stream(TokioIo<hyper::upgrade::Upgraded>),
    /// Requests of `/v1/kube/RES/...`.
    Requests(tokio::sync::mpsc::Receiver<crate::engines::Exchange>),
}

/// Runs the engine under a lease of its own that ends when the grant ends, when the broker
/// shuts down, when the grant's end time passes, when the policy no longer allows the session,
/// or when a required recording fails, whichever comes first: a tunnel never outlives its grant
/// even if a timer or a store write failed.
pub async fn run(
    transport: Transport,
    session: Box<dyn Session>,
    authz: Authorized,
    plan: watch::Sender<Arc<RolePlan>>,
    app: &AppState,
) {
    let identity = authz.identity().clone();
    let resource = authz.resource().name.clone();
    let grant_id = authz.grant_id().to_owned();
    let grant = authz.into_grant();
    let policy = watch_policy(
        app.gate.live().clone(),
        plan,
        identity,
        resource,
        grant_id,
        grant.role.clone(),
    );
    let session_lease = session.lease();
    let lease = session_lease.lease();
    // A task of its own, so the relay's wake-ups do not poll the bounds too.
    let bounds = bound(grant.lease, app.shutdown.lease(), grant.expires_at, policy);
    let watcher = tokio::spawn(async move { session_lease.end(bounds.await) });
    let served = match transport {
        Transport::Stream(stream) => session.serve(stream, lease).await,
        Transport::Requests(requests) => session.serve_requests(requests, lease).await,
    };
    watcher.abort();
    served
        .opener
        .finish(&served.end, served.bytes_up, served.bytes_down)
        .await;
}

/// Resolves when a reload puts a policy in force that would not open this session now: the
/// role, rule or resource is gone, or the role is given where it cannot be enforced. It also
/// ends a session whose role gained or lost guardrails or whose masking changed: its masker,
/// catalog and login settings were built from the old ones and cannot change mid-session.
/// Otherwise the session gets its role's new plan (its guard decides the next statement by the
/// new guardrails). A reload between the gate's decision and this watch is caught by checking
/// the snapshot in force first.
async fn watch_policy(
    live: LiveConfig,
    plan: watch::Sender<Arc<RolePlan>>,
    identity: crate::gate::Identity,
    resource: String,
    grant_id: String,
    role: String,
) -> String {
    let mut changes = live.subscribe();
    let mut now = live.snapshot();
    loop {
        let new = match crate::gate::Gate::replan(&now, &identity, &resource, &grant_id, &role) {
            Ok(new) => new,
            Err(e) => return format!("the broker's policy changed: {}", e.message),
        };
        let current = Arc::clone(&plan.borrow());
        if !Arc::ptr_eq(&new, &current) {
            if !current.carries_over_to(&new) {
                return format!(
                    "the broker's policy changed: role '{role}' now has other masking or gained \
                     or lost guardrails; connect again to continue under them"
                );
            }
            plan.send_replace(new);
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
        now = Arc::clone(&changes.borrow_and_update());
    }
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
pub fn log_end(outcome: &RelayOutcome) -> (String, u64, u64) {
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
