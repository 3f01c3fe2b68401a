//! The PostgreSQL engine's wiring: the resource's credential and target TLS, the one-time
//! tunnel secret, the role's SQL enforcement (guard, masking, held statements) and the cancel
//! keys, handed to `sluice-engine-postgres`. The session's record, catalog and enforcement are
//! built only once the client's first message is a StartupMessage: a CancelRequest (Ctrl-C in
//! psql) is audited as a cancel, not recorded as a session.

use super::{BoxFuture, Engine, Inspection, Served, Session, Tunnel};
use crate::enforce::Enforcer;
use crate::plan::RolePlan;
use crate::tunnel::{SessionOpener, log_end};
use anyhow::{Context, Result};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sluice_config::{Config, Need, Resource, ResourceSpec, SuperuserLogin, TlsMode};
use sluice_engine::{Lease, LeaseHandle};
use sluice_engine_postgres::{
    CancelRegistry, SessionKind, SessionParams, SessionStart, SessionSummary, StartFuture, Started,
    Target, TargetTls,
};
use sluice_shared::recording::SessionEvent;
use sluice_shared::tunnel::SECRET_HEADER;
use sluice_shared::{ApiError, ErrorCode, Secret};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

/// PostgreSQL reads every statement and result value, and records both.
pub const ENFORCES: &[Need] = &[
    Need::SqlGuardrails,
    Need::SqlMasking,
    Need::ContentRecording,
];

/// The shortest one-time secret the broker accepts: the CLI sends 43 characters (256 bits).
const MIN_SECRET_LEN: usize = 32;

/// TLS settings toward every PostgreSQL target, loaded with the config (and again on reload).
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

/// The PostgreSQL engine and what its sessions share.
#[derive(Debug)]
pub struct PostgresEngine {
    /// Maps the broker's cancel keys to the real ones.
    cancels: CancelRegistry,
    /// The classifier, approvals and catalogs SQL sessions share.
    enforcer: Arc<Enforcer>,
    /// Target TLS (replaced on reload).
    targets: watch::Receiver<Arc<Targets>>,
}

impl PostgresEngine {
    /// The engine over the broker's current enforcement and target settings.
    pub fn new(enforcer: Arc<Enforcer>, targets: watch::Receiver<Arc<Targets>>) -> Self {
        Self {
            cancels: CancelRegistry::default(),
            enforcer,
            targets,
        }
    }
}

impl PostgresEngine {
    /// The registry of its sessions' cancel keys (for cancels other brokers pass on).
    pub fn cancels(&self) -> CancelRegistry {
        self.cancels.clone()
    }

    /// The target of `resource` with its credential, as a session logs in to it.
    fn target(&self, resource: &str, pg: &sluice_config::PostgresSpec) -> Result<Target, ApiError> {
        let password = pg
            .password
            .value
            .resolve()
            .map_err(|_| super::unreadable(resource, "credential"))?;
        let tls = self
            .targets
            .borrow()
            .tls
            .get(resource)
            .cloned()
            .unwrap_or(TargetTls::Disable);
        Ok(Target {
            address: pg.address.clone(),
            database: pg.database.clone(),
            user: pg.user.clone(),
            password,
            tls,
            settings: Vec::new(),
        })
    }
}

impl Engine for PostgresEngine {
    fn inspect<'a>(&'a self, resource: &'a Resource) -> BoxFuture<'a, Inspection> {
        Box::pin(async move {
            let ResourceSpec::Postgres(pg) = &resource.spec else {
                return Inspection::default();
            };
            let Ok(target) = self.target(&resource.name, pg) else {
                return Inspection::default();
            };
            match sluice_engine_postgres::probe(&target).await {
                Ok(params) => {
                    let superuser = is_superuser(&params);
                    let notes = superuser
                        .then(|| {
                            format!(
                                "the broker logs in to '{}' as '{}', a database superuser: the \
                                 server checks no privileges, so the role's guardrails alone \
                                 limit what a session can do",
                                resource.name, pg.user
                            )
                        })
                        .into_iter()
                        .collect();
                    Inspection {
                        upstream_superuser: Some(superuser),
                        notes,
                        ..Default::default()
                    }
                }
                Err(e) => {
                    // The session's own login reports it precisely, to the client.
                    warn!(resource = %resource.name, error = %e, "the check could not log in to the target");
                    Inspection::default()
                }
            }
        })
    }

    fn database(&self, resource: &Resource) -> Option<String> {
        match &resource.spec {
            ResourceSpec::Postgres(pg) => Some(pg.database.clone()),
            _ => None,
        }
    }

    fn prepare<'a>(
        &'a self,
        tunnel: Tunnel<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Session>, ApiError>> {
        Box::pin(async move {
            let authz = tunnel.authz;
            let resource = &authz.resource().name;
            let ResourceSpec::Postgres(pg) = &authz.resource().spec else {
                return Err(super::another_kind("postgres"));
            };
            let secret = super::secret_header(tunnel.headers)
                .filter(|s| s.len() >= MIN_SECRET_LEN)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::BadRequest,
                        format!(
                            "a postgres tunnel needs a `{SECRET_HEADER}` of at least \
                             {MIN_SECRET_LEN} characters"
                        ),
                    )
                })?;
            let target = self.target(resource, pg)?;
            let who = authz.identity();
            let holds = crate::holds::Session {
                requester: who.requester(),
                resource: resource.clone(),
                role: authz.role().to_string(),
                grant: authz.grant_id().to_string(),
                approvers: Vec::new(),
                timeout: std::time::Duration::ZERO,
                via: who.via.clone(),
            };
            Ok(Box::new(PostgresSession {
                params: SessionParams {
                    subject: who.subject.clone(),
                    tunnel_secret: Secret::new(secret.to_string()),
                    target: target.clone(),
                    enforcement: Default::default(),
                },
                cancels: self.cancels.clone(),
                start: PostgresStart {
                    opener: tunnel.opener,
                    enforcer: Arc::clone(&self.enforcer),
                    plan: tunnel.plan,
                    superuser_login: pg.superuser_login,
                    resource: resource.clone(),
                    holds,
                    target,
                    counts: None,
                },
                grant: authz.grant_id().to_owned(),
            }) as Box<dyn Session>)
        })
    }
}

struct PostgresSession {
    params: SessionParams,
    cancels: CancelRegistry,
    start: PostgresStart,
    grant: String,
}

impl Session for PostgresSession {
    fn lease(&self) -> Arc<LeaseHandle> {
        self.start.opener.lease()
    }

    fn serve(
        self: Box<Self>,
        mut stream: TokioIo<Upgraded>,
        lease: Lease,
    ) -> BoxFuture<'static, Served> {
        Box::pin(async move {
            let Self {
                params,
                cancels,
                mut start,
                grant,
            } = *self;
            let subject = params.subject.clone();
            let served =
                sluice_engine_postgres::serve(&mut stream, params, &cancels, lease, &mut start)
                    .await;
            let (end, bytes_up, bytes_down) = match served {
                Ok(SessionSummary {
                    kind: SessionKind::Cancel { forwarded },
                    ..
                }) => {
                    // Ctrl-C in psql: a cancel, not a session (no record, no recording).
                    info!(target: "audit", event = "cancel.requested.v1", subject = %subject,
                        resource = %start.resource, grant = %grant, forwarded);
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
            if let (Some(id), Some(counts)) = (start.opener.session_id(), &start.counts) {
                // Rule names and counts only, never a value.
                let counts = counts.lock().unwrap_or_else(|p| p.into_inner()).take();
                for (rule, count) in counts.iter() {
                    info!(target: "audit", event = "masking.applied.v1", session = %id, rule, count);
                    crate::metrics::masked("postgres", count);
                }
            }
            Served {
                opener: start.opener,
                end,
                bytes_up,
                bytes_down,
            }
        })
    }

    fn abandon(self: Box<Self>) -> SessionOpener {
        self.start.opener
    }
}

/// The PostgreSQL session's start: the catalog masking needs, the role's enforcement and the
/// record, only once the client's first message is a StartupMessage.
struct PostgresStart {
    opener: SessionOpener,
    enforcer: Arc<Enforcer>,
    /// The role's plan from the gate, as reloads replace it.
    plan: watch::Receiver<Arc<RolePlan>>,
    /// Whether guarded sessions may run on a superuser login.
    superuser_login: SuperuserLogin,
    resource: String,
    holds: crate::holds::Session,
    /// The target, for the broker's own catalog login.
    target: Target,
    /// How many values each masking rule rewrote, once started.
    counts: Option<Arc<Mutex<sluice_mask::MaskCounts>>>,
}

impl SessionStart for PostgresStart {
    fn start(&mut self) -> StartFuture<'_> {
        Box::pin(async move {
            let enforcer = Arc::clone(&self.enforcer);
            let plan = Arc::clone(&self.plan.borrow_and_update());
            let columns = if plan.sql.needs_catalog() {
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
            let mut enforced =
                enforcer.for_session(&plan, self.holds.clone(), columns, Some(self.plan.clone()));
            self.opener
                .open(enforced.enforcement.masker.clone(), true)
                .await?;
            enforced.enforcement.journal = self.opener.journal();
            self.counts = Some(enforced.counts);
            info!(kind = "postgres", "session started");
            Ok(Some(Started {
                enforcement: enforced.enforcement,
                settings: enforced.settings,
            }))
        })
    }

    fn logged_in(&mut self, params: &[(String, String)]) -> Result<(), String> {
        let superuser = is_superuser(params);
        self.opener.record(SessionEvent::Login {
            user: self.target.user.clone(),
            superuser,
        });
        if !superuser {
            return Ok(());
        }
        let guarded = self.plan.borrow().sql.is_guarded();
        let refused = guarded && self.superuser_login == SuperuserLogin::RefuseGuarded;
        warn!(target: "audit", event = "session.superuser_login.v1",
            session = %self.opener.session_id().unwrap_or("-"), resource = %self.resource,
            user = %self.target.user, guarded, refused);
        if refused {
            return Err(format!(
                "the broker logs in to '{}' as '{}', a database superuser, and this resource \
                 refuses guarded roles on a superuser login (superuser_login: refuse-guarded); \
                 the operator should give the broker a login without superuser rights",
                self.resource, self.target.user
            ));
        }
        Ok(())
    }
}

/// Whether the server's ParameterStatus says the login is a superuser.
pub fn is_superuser(params: &[(String, String)]) -> bool {
    params
        .iter()
        .any(|(name, value)| name == "is_superuser" && value == "on")
}
